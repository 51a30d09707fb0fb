"""JavaScript codec throughput with limits on: ``python -m tests.perf.bench_js [seconds]``.

Prints decodes per second for a typical TTN codec (type-tagged frames, ``var``, helpers, bit
operations) and an OS2iot decoder (whole ChirpStack event and device record in, an NGSI-LD entity
out), with one and two threads (QuickJS releases the GIL while JavaScript runs), plus what the
per-call isolation costs (the reset after every call), what building a context costs, and its heap.
Importing builds nothing; ``run()`` does the work, so a smoke test can call it on a tiny budget.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from decoders.js import JsCodec, Limits
from decoders.js.engine import Engine

TTN_CODEC = r"""
// A type-tagged environment sensor frame, written the way many device-repository codecs are.
var TYPES = { 0x01: 'temperature', 0x02: 'humidity', 0x04: 'light', 0x05: 'motion', 0x06: 'co2', 0x07: 'vdd' };

function u16(bytes, i) { return (bytes[i] << 8) | bytes[i + 1]; }
function s16(bytes, i) { var v = u16(bytes, i); return v & 0x8000 ? v - 0x10000 : v; }

function decodeUplink(input) {
  var bytes = input.bytes, data = {}, warnings = [], i = 0;
  if (input.fPort !== 5) return { errors: ['unknown FPort ' + input.fPort] };
  while (i < bytes.length) {
    var type = bytes[i++];
    switch (type) {
      case 0x01: data.temperature = s16(bytes, i) / 10; i += 2; break;
      case 0x02: data.humidity = bytes[i]; i += 1; break;
      case 0x04: data.light = u16(bytes, i); i += 2; break;
      case 0x05: data.motion = bytes[i]; i += 1; break;
      case 0x06: data.co2 = u16(bytes, i); i += 2; break;
      case 0x07: data.vdd = u16(bytes, i); i += 2; break;
      default: return { errors: ['unknown type 0x' + type.toString(16)] };
    }
  }
  if (data.vdd !== undefined && data.vdd < 2800) warnings.push('low battery');
  return { data: data, warnings: warnings };
}

function normalizeUplink(input) {
  return { data: { air: { temperature: input.data.temperature, relativeHumidity: input.data.humidity } } };
}
"""
TTN_FRAME = bytes.fromhex("0100e202290400270506060320070e3d")

OS2IOT_CODEC = r"""
function decode(payload, metadata) {
  var bytes = Buffer.from(payload.data, 'base64');
  var extra = JSON.parse(metadata.metadata);
  return {
    id: 'urn:ngsi-ld:AirQualityObserved:' + payload.devEUI,
    type: 'AirQualityObserved',
    temperature: { type: 'Property', value: bytes.readInt16BE(1) / 10, observedAt: payload.rxInfo[0].time },
    relativeHumidity: { type: 'Property', value: bytes.readUInt8(4) / 100, observedAt: payload.rxInfo[0].time },
    location: { type: 'GeoProperty', value: metadata.location },
    floor: extra.floor
  };
}
"""
EVENT: dict[str, Any] = {
    "deduplicationId": "3f1b2c4d-5e6f-4a1b-8c9d-0e1f2a3b4c5d",
    "time": "2024-05-01T10:00:00.123456789Z",
    "deviceInfo": {
        "tenantName": "City",
        "applicationName": "Sensors",
        "deviceName": "Room 101",
        "devEui": "a81758fffe03b2c1",
        "tags": {"floor": "1"},
    },
    "devAddr": "01ab23cd",
    "adr": True,
    "dr": 5,
    "fCnt": 1042,
    "fPort": 5,
    "data": "AQDiAikEACcFBgYDIAcOPQ==",
    "rxInfo": [
        {
            "gatewayId": "0016c001f153a140",
            "rssi": -87,
            "snr": 9.8,
            "channel": 2,
            "gwTime": "2024-05-01T10:00:00.100Z",
            "nsTime": "2024-05-01T10:00:00.200Z",
        }
    ],
    "txInfo": {"frequency": 868100000, "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": 7}}},
}
DEVICE: dict[str, Any] = {
    "name": "Room 101",
    "dev_eui": "a81758fffe03b2c1",
    "location": {"lat": 56.15, "lon": 10.2},
    "metadata": {"floor": 1},
}


def _rate(step: Callable[[], object], seconds: float, threads: int = 1) -> float:
    """Calls per second of ``step`` over about ``seconds``, summed over ``threads`` threads."""
    counts = [0] * threads
    deadline = time.perf_counter() + seconds

    def worker(slot: int) -> None:
        step()  # warm up: builds this thread's context
        n = 0
        while time.perf_counter() < deadline:
            for _ in range(50):
                step()
            n += 50
        counts[slot] = n

    start = time.perf_counter()
    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(counts) / (time.perf_counter() - start)


def _per_call_us(step: Callable[[], object], seconds: float) -> float:
    return 1e6 / _rate(step, seconds)


def run(seconds: float = 1.0, threads: tuple[int, ...] = (1,)) -> dict[str, float]:
    """Figures by name: ``*_per_s`` rates, ``*_us``/``*_ms`` costs, ``context_kib``."""
    limits = Limits()  # 100 ms, 32 MiB, 256 KiB output: the defaults the pipeline uses
    ttn = JsCodec(TTN_CODEC, limits=limits)
    os2iot = JsCodec(OS2IOT_CODEC, limits=limits)
    moment = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert ttn.decode(TTN_FRAME, 5).ok and os2iot.decode(TTN_FRAME, 5, event=EVENT, device=DEVICE).ok
    figures: dict[str, float] = {}
    for n in threads:
        figures[f"ttn_decodes_per_s_{n}_thread"] = _rate(lambda: ttn.decode(TTN_FRAME, 5, recv_time=moment), seconds, n)
        figures[f"os2iot_decodes_per_s_{n}_thread"] = _rate(
            lambda: os2iot.decode(TTN_FRAME, 5, event=EVENT, device=DEVICE, recv_time=moment), seconds, n
        )
    engine = Engine(TTN_CODEC, limits)
    figures["reset_after_call_us"] = _per_call_us(engine.reset, seconds / 4)
    build_start, builds = time.perf_counter(), 0
    while builds < 3 or time.perf_counter() - build_start < seconds / 4:
        Engine(TTN_CODEC, limits)
        builds += 1
    figures["context_build_ms"] = (time.perf_counter() - build_start) / builds * 1e3
    figures["context_kib"] = engine.memory_used() / 1024
    return figures


if __name__ == "__main__":
    budget = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    for name, value in run(budget, threads=(1, 2)).items():
        print(f"{name:>32}: {value:12,.1f}")
