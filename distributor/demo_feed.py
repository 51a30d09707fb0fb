"""Realistic ChirpStack v4 events for the demo and tests, built with chirpstack-api's own protobufs.

``uplink_event`` gives an ``UplinkEvent`` message; ``to_json`` renders it the way ChirpStack's
JSON marshaler does (protobuf JSON mapping). Payload makers produce frames of the supported
device types with values that drift like real indoor climate.
"""

from __future__ import annotations

import math
import random
import struct
import uuid
from datetime import UTC, datetime
from typing import Any

from chirpstack_api import common, gw, integration
from google.protobuf import json_format

DEMO_TENANT_ID = "52f14cd4-c6f1-4fbd-8f87-4025e1d49242"   # the ChirpStack tenant the demo's events come from


def uplink_event(*, dev_eui: str, data: bytes, f_cnt: int, f_port: int = 5, application_id: str | None = None,
                 device_name: str = "sensor", tenant_id: str | None = None, dedup_id: str | None = None,
                 rssi: int = -97, snr: float = 7.5, when: datetime | None = None,
                 tags: dict[str, str] | None = None) -> integration.UplinkEvent:
    ev = integration.UplinkEvent()
    ev.deduplication_id = dedup_id or str(uuid.uuid4())
    ev.time.FromDatetime(when or datetime.now(UTC))
    info = ev.device_info
    info.tenant_id = tenant_id or DEMO_TENANT_ID
    info.tenant_name = "City"
    info.application_id = application_id or "3b1a5ad5-5a2e-4b8f-9a7c-0e3f2d1c4b5a"
    info.application_name = "Schools"
    info.device_profile_id = "0d7e8f3a-2b1c-4d5e-8f9a-1b2c3d4e5f60"
    info.device_profile_name = "EU868 class A"
    info.device_name = device_name
    info.dev_eui = dev_eui
    info.device_class_enabled = common.DeviceClass.CLASS_A
    for k, v in (tags or {}).items():
        info.tags[k] = v
    ev.dev_addr = "01fa2b3c"
    ev.adr = True
    ev.dr = 5
    ev.f_cnt = f_cnt
    ev.f_port = f_port
    ev.data = data
    rx = ev.rx_info.add()
    rx.gateway_id = "0016c001ff10a235"
    rx.uplink_id = random.randint(1, 2**31)
    rx.rssi = rssi
    rx.snr = snr
    rx.channel = 2
    rx.crc_status = gw.CRCStatus.CRC_OK
    ev.tx_info.frequency = 868_500_000
    ev.tx_info.modulation.lora.bandwidth = 125_000
    ev.tx_info.modulation.lora.spreading_factor = 7
    ev.tx_info.modulation.lora.code_rate = gw.CodeRate.CR_4_5
    ev.region_config_id = "eu868"
    return ev


def status_event(dev_eui: str, battery: float = 87.5, margin: int = 9) -> integration.StatusEvent:
    ev = integration.StatusEvent()
    ev.deduplication_id = str(uuid.uuid4())
    ev.time.FromDatetime(datetime.now(UTC))
    ev.device_info.dev_eui = dev_eui
    ev.device_info.device_name = "sensor"
    ev.margin = margin
    ev.battery_level = battery
    return ev


def to_json(message: Any) -> bytes:
    text: str = json_format.MessageToJson(message)
    return text.encode()


# --- payload makers -------------------------------------------------------------------------
def _climate(t: float, seed: int) -> tuple[float, int]:
    temperature = 21.0 + 2.5 * math.sin(t / 60 + seed) + random.uniform(-0.2, 0.2)
    humidity = int(45 + 8 * math.sin(t / 90 + seed))
    return round(temperature, 1), humidity


def elsys_frame(t: float, seed: int = 0) -> bytes:
    temperature, humidity = _climate(t, seed)
    return (b"\x01" + struct.pack(">h", int(temperature * 10)) + b"\x02" + bytes([humidity])
            + b"\x04" + struct.pack(">H", random.randint(80, 400)) + b"\x05" + bytes([random.randint(0, 12)])
            + b"\x07" + struct.pack(">H", 3600))


def cayenne_frame(t: float, seed: int = 1) -> bytes:
    temperature, humidity = _climate(t, seed)
    return b"\x01\x67" + struct.pack(">h", int(temperature * 10)) + b"\x02\x68" + bytes([humidity * 2])


def milesight_am307_frame(t: float, seed: int = 2) -> bytes:
    temperature, humidity = _climate(t, seed)
    co2 = int(600 + 400 * abs(math.sin(t / 120 + seed)))
    return (b"\x01\x75" + bytes([92]) + b"\x03\x67" + struct.pack("<h", int(temperature * 10))
            + b"\x04\x68" + bytes([humidity * 2]) + b"\x07\x7d" + struct.pack("<H", co2))
