"""JavaScript codec throughput with limits on: ``python -m tests.perf.bench_js [seconds]``.

Prints decodes per second for a typical TTN codec (type-tagged frames, ``var``, helpers, bit
operations) and an OS2iot decoder (whole ChirpStack event and device record in, an NGSI-LD entity
out), with one and two threads (QuickJS releases the GIL while JavaScript runs), plus what the
per-call isolation costs (the reset after every call), what building a context costs, and its heap.

Fresh codec state per call (the factory runs the codec's top level again every call): a minimal
codec (the floor), the TTN codec with a top level that builds a 256-entry lookup table, and the
same table built lazily by the codec's own code. And the service's path: decodes per second through
``distributor.js_pool`` (worker processes, one organization allowed on every worker), with the
service process's own CPU per decode (framing, JSON, callbacks).
The anchor, in the same run: plain QuickJS on the same codec (one context, no limits, state kept
between calls, JSON in and out as the harness does), decode alone and decode with normalizeUplink; and
the workers' own CPU per decode through the pool (``pool_decodes_per_worker_cpu_s_*``: calls/s per core),
read from /proc, so the figure is there on Linux only.
Importing builds nothing; ``run()`` does the work, so a smoke test can call it on a tiny budget.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import quickjs

from decoders.js import JsCodec, Limits
from decoders.js.engine import Engine
from decoders.js.trial import decode_measured
from distributor.js_pool import JsPool
from registry.records import JsDecoderRecord

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

MINIMAL_CODEC = "function decodeUplink(input) { return { data: { first: input.bytes[0] } }; }"

TABLE_CODEC = r"""
// The same frames, but the top level builds a lookup table of 256 entries (names, scales, sizes),
// which a codec with fresh state per call builds again for every uplink.
var TABLE = [];
for (var code = 0; code < 256; code++) {
  TABLE.push({ name: 'field_' + code.toString(16), scale: code % 7 === 0 ? 10 : 1, size: code % 3 === 0 ? 2 : 1 });
}
TABLE[1] = { name: 'temperature', scale: 10, size: 2, signed: true };
TABLE[2] = { name: 'humidity', scale: 1, size: 1 };
TABLE[4] = { name: 'light', scale: 1, size: 2 };
TABLE[5] = { name: 'motion', scale: 1, size: 1 };
TABLE[6] = { name: 'co2', scale: 1, size: 2 };
TABLE[7] = { name: 'vdd', scale: 1, size: 2 };

function decodeUplink(input) {
  var bytes = input.bytes, data = {}, i = 0;
  while (i < bytes.length) {
    var entry = TABLE[bytes[i++]], v = entry.size === 2 ? (bytes[i] << 8) | bytes[i + 1] : bytes[i];
    if (entry.signed && v & 0x8000) v -= 0x10000;
    data[entry.name] = v / entry.scale;
    i += entry.size;
  }
  return { data: data };
}
"""

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


PLAIN_CALL = """(function (normalize) {
  return function (text) {
    var input = JSON.parse(text);
    input.recvTime = new Date(input.t);
    var r = decodeUplink(input);
    if (!normalize) return JSON.stringify({ r: r });
    return JSON.stringify({ r: r, n: normalizeUplink({ data: JSON.parse(JSON.stringify(r.data)) }) });
  };
})"""


def plain_quickjs(source: str, normalize: bool) -> Callable[[bytes, int], Any]:
    """The same codec in bare QuickJS: one context, no limits, no fresh state, JSON text in and out."""
    ctx = quickjs.Context()
    ctx.eval(source)
    call = ctx.eval(PLAIN_CALL)(normalize)

    def decode(payload: bytes, fport: int) -> Any:
        text = orjson.dumps({"bytes": list(payload), "fPort": fport, "t": 1_714_557_600_000}).decode()
        return orjson.loads(call(text))

    return decode


def _cpu_s(pids: list[int]) -> float | None:
    """User + system CPU seconds of these processes (Linux /proc), or None where that cannot be read."""
    total = 0.0
    try:
        for pid in pids:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    return total


async def _pool_rate(workers: int, seconds: float, window: int = 256) -> tuple[float, float, float | None]:
    """(decodes per second through the pool, the service process's CPU microseconds per decode, the
    workers' CPU microseconds per decode, None where /proc is not there)."""
    pool = JsPool(workers, workers, 1_000_000)
    await pool.start()
    await pool.warm()
    record = JsDecoderRecord("bench", "org", "ttn", TTN_CODEC, 100, 1)
    body = {"op": "decode", "c": ["bench", 1, None], "p": base64.b64encode(TTN_FRAME).decode(), "f": 5,
            "v": {}, "t": 1_714_557_600_000}
    loop = asyncio.get_running_loop()
    warmed, finished = loop.create_future(), loop.create_future()
    outstanding = count = 0
    deadline = float("inf")

    def warm_done(answer: dict[str, Any]) -> None:
        nonlocal outstanding
        outstanding -= 1
        if outstanding == 0:
            warmed.set_result(None)

    def done(answer: dict[str, Any]) -> None:
        nonlocal outstanding, count
        count += 1
        if time.perf_counter() < deadline:
            pool.submit("org", record, None, body, done)
        else:
            outstanding -= 1
            if outstanding == 0:
                finished.set_result(None)

    outstanding = window  # enough to reach (and load the codec in) every worker
    for _ in range(window):
        pool.submit("org", record, None, body, warm_done)
    await warmed
    pids = pool.worker_pids()
    start, cpu, worker_cpu = time.perf_counter(), time.process_time(), _cpu_s(pids)
    deadline = start + seconds
    outstanding = window
    for _ in range(window):
        pool.submit("org", record, None, body, done)
    await finished
    elapsed, cpu_used = time.perf_counter() - start, time.process_time() - cpu
    worker_end = _cpu_s(pids)
    await pool.close()
    worker_us = None if worker_cpu is None or worker_end is None else (worker_end - worker_cpu) / max(1, count) * 1e6
    return count / elapsed, cpu_used / max(1, count) * 1e6, worker_us


def run(seconds: float = 1.0, threads: tuple[int, ...] = (1,), pool_workers: tuple[int, ...] = (1,)
        ) -> dict[str, float]:
    """Figures by name: ``*_per_s`` rates, ``*_us``/``*_ms`` costs, ``context_kib``."""
    limits = Limits()  # 100 ms, 32 MiB, 256 KiB output: the defaults the pipeline uses
    ttn = JsCodec(TTN_CODEC, limits=limits)
    os2iot = JsCodec(OS2IOT_CODEC, limits=limits)
    minimal = JsCodec(MINIMAL_CODEC, limits=limits)
    table = JsCodec(TABLE_CODEC, limits=limits)
    moment = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert ttn.decode(TTN_FRAME, 5).ok and os2iot.decode(TTN_FRAME, 5, event=EVENT, device=DEVICE).ok
    assert table.decode(TTN_FRAME, 5).data == ttn.decode(TTN_FRAME, 5).data
    figures: dict[str, float] = {}
    for n in threads:
        figures[f"ttn_decodes_per_s_{n}_thread"] = _rate(lambda: ttn.decode(TTN_FRAME, 5, recv_time=moment), seconds, n)
        figures[f"os2iot_decodes_per_s_{n}_thread"] = _rate(
            lambda: os2iot.decode(TTN_FRAME, 5, event=EVENT, device=DEVICE, recv_time=moment), seconds, n
        )
    figures["ttn_decode_and_measure_per_s_1_thread"] = _rate(  # what a worker does per uplink, in process
        lambda: decode_measured(ttn, TTN_FRAME, 5, variables={}, recv_time=moment), seconds)
    plain, plain_normalized = plain_quickjs(TTN_CODEC, False), plain_quickjs(TTN_CODEC, True)
    figures["plain_quickjs_decodes_per_s_1_thread"] = _rate(lambda: plain(TTN_FRAME, 5), seconds)
    figures["plain_quickjs_decode_and_normalize_per_s_1_thread"] = _rate(
        lambda: plain_normalized(TTN_FRAME, 5), seconds)
    figures["minimal_decodes_per_s_1_thread"] = _rate(lambda: minimal.decode(TTN_FRAME, 5, recv_time=moment), seconds)
    figures["table_top_level_decodes_per_s_1_thread"] = _rate(
        lambda: table.decode(TTN_FRAME, 5, recv_time=moment), seconds)
    engine = Engine(TTN_CODEC, limits)
    figures["reset_after_call_us"] = _per_call_us(engine.reset, seconds / 4)
    build_start, builds = time.perf_counter(), 0
    while builds < 3 or time.perf_counter() - build_start < seconds / 4:
        Engine(TTN_CODEC, limits)
        builds += 1
    figures["context_build_ms"] = (time.perf_counter() - build_start) / builds * 1e3
    figures["context_kib"] = engine.memory_used() / 1024
    for n in pool_workers:
        rate, parent_us, worker_us = asyncio.run(_pool_rate(n, seconds))
        figures[f"pool_decodes_per_s_{n}_worker"] = rate
        figures[f"pool_service_cpu_us_per_decode_{n}_worker"] = parent_us
        if worker_us:  # clock ticks: a tiny budget may see none
            figures[f"pool_worker_cpu_us_per_decode_{n}_worker"] = worker_us
            figures[f"pool_decodes_per_worker_cpu_s_{n}_worker"] = 1e6 / worker_us
    return figures


if __name__ == "__main__":
    budget = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    for name, value in run(budget, threads=(1, 2), pool_workers=(1, 2)).items():
        print(f"{name:>52}: {value:12,.1f}")
