"""Browan Tabs TBHH100 healthy home sensor: temperature and relative humidity on fPort 103.

Layout from Browan's Tabs payload document (as published with the TTN device repository):
byte 0 status (bit 3: 1 temperature/humidity sensor, 0 IAQ sensor; other bits reserved),
byte 1 battery (bits 3-0 ν, 1...14: (25 + ν) / 10 V), byte 2 temperature (bits 6-0 τ: τ - 32 °C,
-32...95), byte 3 relative humidity (bits 6-0 in %, 127 = measurement error); bytes 4-7 are
reserved for the IAQ model (TBHV110) and ignored here.

Compared with Browan's TTN codec (tbhh100.js) on its example and 200 mutated frames: temperature, humidity
and battery agree wherever both report them. Kept apart from that codec, on purpose: it reports humidity 127
(the documented measurement-error code) as 127 %, battery levels 0 and 15 (outside the documented 1...14)
as 2.5 V and 4.0 V, and ``status`` as byte 0 >> 3; ours warns instead, and keeps byte 0 whole as ``status``.
"""

from __future__ import annotations

from typing import Any

from decoders.contract import DecodeResult, DeviceType, Example, Measurement, failure, measurements_from

DEVICE = DeviceType(
    id="browan-tbhh100",
    vendor="Browan",
    model="Tabs TBHH100",
    description="Healthy home sensor: indoor temperature and relative humidity",
    protocols=("lorawan",),
    version="1",
)

MEASUREMENTS = ("temperature", "humidity", "battery_voltage")

DATA_PORT = 103
SIZE = 4
HUMIDITY_ERROR = 127


def decode(payload: bytes, fport: int | None) -> DecodeResult:
    if fport not in (None, DATA_PORT):
        return failure(f"unknown fPort {fport}: the TBHH100 sends data on fPort {DATA_PORT}")
    if len(payload) < SIZE:
        return failure(f"frame too short: {len(payload)} bytes, needs {SIZE}")
    status, battery, temperature, humidity = payload[:SIZE]
    data: dict[str, Any] = {"status": status, "temperature": (temperature & 0x7F) - 32}
    warnings: list[str] = []
    level = battery & 0x0F
    if 1 <= level <= 14:
        data["battery_voltage"] = (25 + level) / 10
    else:
        warnings.append(f"battery level {level} outside 1...14: no battery voltage")
    if humidity & 0x7F == HUMIDITY_ERROR:
        warnings.append("humidity measurement error (127)")
    else:
        data["humidity"] = humidity & 0x7F
    if not status & 0x08:
        warnings.append("status bit 3 clear: frame of an IAQ sensor, its air quality values are not decoded")
    return DecodeResult(data=data, warnings=warnings)


_NORMALIZED = {name: (name, 1.0) for name in MEASUREMENTS}


def normalize(data: dict[str, Any]) -> list[Measurement]:
    return measurements_from(data, _NORMALIZED)


EXAMPLES = (
    Example(
        # status 0x08; battery 0xab: ν = 11 -> 3.6 V; 0x35 = 53 -> 21 C; 0x22 = 34 %; bytes 4-7 reserved
        "temperature and humidity (vendor sample)",
        "08ab3522ffffffff",
        103,
        data={"status": 8, "temperature": 21, "humidity": 34, "battery_voltage": 3.6},
        measurements=(("temperature", 21), ("humidity", 34), ("battery_voltage", 3.6)),
    ),
    Example(
        # battery 0x01 -> 2.6 V; 0x14 = 20 -> -12 C; 0x5a = 90 %
        "cold and damp, low battery, 4-byte frame",
        "0801145a",
        103,
        data={"status": 8, "temperature": -12, "humidity": 90, "battery_voltage": 2.6},
        measurements=(("temperature", -12), ("battery_voltage", 2.6)),
    ),
    Example("humidity error and battery level 0 (warnings)", "08003f7f", 103, data={"status": 8, "temperature": 31}),
    Example("unknown fPort (204 is the configuration reply)", "08ab3522", 204, errors=("unknown fPort 204",)),
    Example("unknown fPort (TTN vendor sample)", "01", 42, errors=("unknown fPort 42",)),
    Example("too short", "08ab35", 103, errors=("frame too short: 3 bytes, needs 4",)),
    Example("empty", "", 103, errors=("frame too short: 0 bytes",)),
)
