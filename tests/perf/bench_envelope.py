"""µs per ``build_message`` (the envelope) and per SenML render: ``python -m tests.perf.bench_envelope``.

The envelope runs once per uplink on the event loop; this measures what a change to it costs
(issue 15 added organization and application names, and the device name in SenML packs).
Importing builds nothing; ``run()`` does the work, so a smoke test can call it with a few iterations.
"""

from __future__ import annotations

import time
from typing import Any

from decoders.contract import DecodeResult, Measurement
from distributor.envelope import build_message, message_id
from distributor.formats import render
from registry.records import Device

DEVICE = Device(id="5b2f7c1e-8d3a-4b6f-9e0d-1a2b3c4d5e6f", application_id="17c82e96-be03-4f38-aef3-f83d48582d97",
                organization_id="52f14cd4-c6f1-4fbd-8f87-4025e1d49242", name="classroom-1.12", kind="lorawan",
                decoder="elsys", dev_eui="a81758fffe0312ab", tags={"room": "1.12"}, lat=56.1572, lon=10.2107,
                organization_name="Demo City", application_name="Indoor climate in schools")
NETWORK: dict[str, Any] = {"kind": "lorawan", "dev_eui": "a81758fffe0312ab", "f_cnt": 42, "f_port": 5,
                           "dedup_id": "3f1b2c4d-5e6f-4a1b-8c9d-0e1f2a3b4c5d",
                           "radio": [{"gateway": "0016c001ff10a235", "rssi": -97, "snr": 7.5}]}
DATA = {"temperature": 27.9, "humidity": 49, "light": 139, "motion": 8, "vdd": 3645}
MEASUREMENTS = [Measurement("temperature", "Cel", 27.9), Measurement("humidity", "%RH", 49),
                Measurement("illuminance", "lx", 139), Measurement("motion_count", "count", 8),
                Measurement("battery_voltage", "mV", 3645)]


def one_message(i: int = 0) -> dict[str, Any]:
    return build_message(msg_id=message_id(f"k{i}"), received_at=1795341600.123 + i, measured_at=None,
                         device=DEVICE, network=NETWORK, payload=b"\x01\x01\x17\x02\x31", decoder_version="1",
                         result=DecodeResult(data=DATA), measurements=MEASUREMENTS)


def run(iterations: int = 200_000) -> dict[str, float]:
    """Best of three runs, in µs per call: the envelope alone and one SenML render of it."""
    envelope = senml = float("inf")
    message = one_message()
    for _ in range(3):
        started = time.perf_counter()
        for i in range(iterations):
            one_message(i)
        envelope = min(envelope, (time.perf_counter() - started) / iterations * 1e6)
        started = time.perf_counter()
        for _ in range(iterations):
            render("senml", message, None)
        senml = min(senml, (time.perf_counter() - started) / iterations * 1e6)
    return {"build_message_us": round(envelope, 3), "senml_render_us": round(senml, 3)}


if __name__ == "__main__":
    print(run())
