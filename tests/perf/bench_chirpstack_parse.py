"""µs per ChirpStack uplink parse, JSON vs protobuf marshaler: ``python -m tests.perf.bench_chirpstack_parse``.

Importing builds nothing; ``run()`` does the work, so a smoke test can call it with a few iterations.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from chirpstack_api import gw, integration
from google.protobuf import json_format

from distributor.sources.chirpstack_parse import parse_json, parse_protobuf


def sample_uplink(gateways: int = 1) -> Any:
    """An uplink as ChirpStack publishes it: ~850 bytes of JSON with one gateway, ~180 more per extra gateway."""
    m = integration.UplinkEvent(deduplication_id="3f1b2c4d-5e6f-4a1b-8c9d-0e1f2a3b4c5d", dev_addr="01ab23cd",
                                adr=True, dr=5, f_cnt=1042, f_port=5, data=bytes.fromhex("010117023104008b0508070e3d"),
                                region_config_id="eu868")
    m.time.FromJsonString("2024-05-01T10:00:00.123456789Z")
    d = m.device_info
    d.tenant_id, d.tenant_name = "52f14cd4-c6f1-4fbd-8f87-4025e1d49242", "City"
    d.application_id, d.application_name = "17c82e96-be03-4f38-aef3-f83d48582d97", "Sensors"
    d.device_profile_id, d.device_profile_name = "14855bf7-d10d-4aee-b618-ebfcb64dc7ad", "Elsys ERS"
    d.device_name, d.dev_eui = "Room 101", "a81758fffe03b2c1"
    d.tags["floor"] = "1"
    for i in range(gateways):
        rx = m.rx_info.add(gateway_id=f"0016c001f153a14{i}", uplink_id=123456 + i, rssi=-87 - 9 * i, snr=9.8 - 3 * i,
                           channel=2, crc_status=gw.CRC_OK)
        rx.gw_time.FromJsonString("2024-05-01T10:00:00.100Z")
        rx.ns_time.FromJsonString("2024-05-01T10:00:00.200Z")
    m.tx_info.frequency = 868100000
    m.tx_info.modulation.lora.bandwidth = 125000
    m.tx_info.modulation.lora.spreading_factor = 7
    m.tx_info.modulation.lora.code_rate = gw.CR_4_5
    return m


def _us_per_call(fn: Any, arg: bytes, iterations: int) -> float:
    fn("up", arg)  # warm up
    start = time.perf_counter()
    for _ in range(iterations):
        fn("up", arg)
    return (time.perf_counter() - start) / iterations * 1e6


def run(iterations: int = 20_000, gateways: int = 1) -> dict[str, float]:
    """µs per parse for each marshaler."""
    msg = sample_uplink(gateways)
    as_json = orjson.dumps(json_format.MessageToDict(msg))
    as_pb = msg.SerializeToString()
    return {"json": _us_per_call(parse_json, as_json, iterations),
            "protobuf": _us_per_call(parse_protobuf, as_pb, iterations)}


if __name__ == "__main__":
    for gateways in (1, 3):
        msg = sample_uplink(gateways)
        print(f"uplink, {gateways} gateway(s): {len(orjson.dumps(json_format.MessageToDict(msg)))} bytes JSON, "
              f"{msg.ByteSize()} bytes protobuf")
        for marshaler, us in run(gateways=gateways).items():
            print(f"  {marshaler:>9}: {us:6.2f} µs per parse")
