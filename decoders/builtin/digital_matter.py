"""Digital Matter Oyster (LoRaWAN): battery-powered GPS asset tracker.

Layout from Digital Matter's Oyster LoRaWAN payload documentation and their codec in the TTN device
repository. Values are little-endian.

* fPort 1, position (11 bytes): int32 latitude and longitude in 1e-7 degrees; a flags byte (bit 0 in
  trip, bit 1 last fix failed, bits 2-7 heading in 5.625 degree steps); speed in km/h; battery in 25 mV.
* fPort 2, downlink acknowledgement (3 bytes): bit 7 accepted, bits 0-6 sequence; firmware major, minor.
* fPort 3, statistics (11 bytes): an 88-bit little-endian bit field of lifetime counters.
* fPort 4, compact position (9 bytes): int24 latitude and longitude in 256e-7 degrees; heading in 45
  degree steps (bits 0-2) and speed in 5 km/h steps (bits 3-7); battery in 25 mV; flags (bit 0 in trip,
  bit 1 last fix failed, bit 2 man down).

When the last fix failed the position is the previous one: it is kept under ``cached`` with a
warning, and is not reported as a measurement.

Compared with the TTN codec (oyster.js) on its example and 200 mutated frames per fPort: every value agrees
but the battery voltage, which that codec rounds to two decimals (25 mV steps: 1.625 V becomes 1.63 V);
ours keeps the exact step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from decoders.contract import DecodeResult, DeviceType, Example, Measurement, measurements_from

DEVICE = DeviceType(
    id="digital-matter-oyster",
    vendor="Digital Matter",
    model="Oyster LoRaWAN",
    description="Battery-powered GPS tracker for assets, trailers and containers",
    protocols=("lorawan",),
    version="1",
)

MEASUREMENTS = ("latitude", "longitude", "speed", "battery_voltage")


def _le(b: bytes, signed: bool = False) -> int:
    return int.from_bytes(b, "little", signed=signed)


def _volts(b: int) -> float:
    return b * 25 / 1000


def _located(data: dict[str, Any], location: dict[str, Any]) -> DecodeResult:
    """A position frame: the location at top level, or under ``cached`` when the fix failed."""
    if data["fix_failed"]:
        warning = "last fix failed: position is the previous fix"
        return DecodeResult(data={**data, "cached": location}, warnings=[warning])
    return DecodeResult(data={**data, **location})


def _position(p: bytes) -> DecodeResult:
    data = {"type": "position", "in_trip": bool(p[8] & 0x01), "fix_failed": bool(p[8] & 0x02),
            "battery_voltage": _volts(p[10])}
    location = {"latitude": _le(p[0:4], True) / 1e7, "longitude": _le(p[4:8], True) / 1e7,
                "heading": (p[8] >> 2) * 5.625, "speed_kmh": p[9]}
    return _located(data, location)


def _compact_position(p: bytes) -> DecodeResult:
    data = {"type": "position", "in_trip": bool(p[8] & 0x01), "fix_failed": bool(p[8] & 0x02),
            "man_down": bool(p[8] & 0x04), "battery_voltage": _volts(p[7])}
    location = {"latitude": _le(p[0:3], True) * 256 / 1e7, "longitude": _le(p[3:6], True) * 256 / 1e7,
                "heading": (p[6] & 0x07) * 45, "speed_kmh": (p[6] >> 3) * 5}
    return _located(data, location)


def _downlink_ack(p: bytes) -> DecodeResult:
    return DecodeResult(data={"type": "downlink_ack", "sequence": p[0] & 0x7F, "accepted": bool(p[0] & 0x80),
                              "firmware_major": p[1], "firmware_minor": p[2]})


# (name, bits, scale) in transmission order, least significant bit first
_STATISTICS: tuple[tuple[str, int, int], ...] = (
    ("initial_battery", 4, 0), ("tx_count", 11, 32), ("trip_count", 13, 32), ("gps_successes", 10, 32),
    ("gps_fails", 8, 32), ("average_gps_fix_s", 9, 1), ("average_gps_fail_s", 9, 1),
    ("average_gps_freshen_s", 8, 1), ("wakeups_per_trip", 7, 1), ("uptime_weeks", 9, 1),
)


def _statistics(p: bytes) -> DecodeResult:
    bits = _le(p[0:11])
    data: dict[str, Any] = {"type": "statistics"}
    for name, width, scale in _STATISTICS:
        value = bits & ((1 << width) - 1)
        bits >>= width
        if scale:
            data[name] = value * scale
        else:  # initial battery voltage: 4.0 V + 0.1 V steps
            data["initial_battery_voltage"] = (40 + value) / 10
    return DecodeResult(data=data)


_PORTS: dict[int, tuple[int, Callable[[bytes], DecodeResult]]] = {
    1: (11, _position), 2: (3, _downlink_ack), 3: (11, _statistics), 4: (9, _compact_position),
}


def decode(payload: bytes, fport: int | None) -> DecodeResult:
    """Position on fPort 1 and 4, downlink acknowledgement on 2, statistics on 3."""
    port = _PORTS.get(fport) if fport is not None else None
    if port is None:
        return DecodeResult(errors=[f"unsupported fPort {fport}: the Oyster sends on 1, 2, 3 and 4"])
    size, read = port
    if len(payload) < size:
        return DecodeResult(errors=[f"fPort {fport} frame needs {size} bytes, has {len(payload)}"])
    return read(payload)


_NORMALIZED = {
    "latitude": ("latitude", 1),
    "longitude": ("longitude", 1),
    "speed_kmh": ("speed", 1 / 3.6),
    "battery_voltage": ("battery_voltage", 1),
}


def normalize(data: dict[str, Any]) -> list[Measurement]:
    """Current position, speed in m/s and battery; a cached (stale) position is not a measurement."""
    return measurements_from(data, _NORMALIZED)


EXAMPLES = (
    Example(
        "position, parked (TTN vendor sample)",
        "0030edec00322445 00 00 de".replace(" ", ""),
        1,
        data={"type": "position", "in_trip": False, "fix_failed": False, "battery_voltage": 5.55,
              "latitude": -32.0, "longitude": 116.0, "heading": 0.0, "speed_kmh": 0},
        measurements=(("latitude", -32.0), ("longitude", 116.0), ("speed", 0), ("battery_voltage", 5.55)),
    ),
    Example(
        "position in trip, heading east at 36 km/h",
        "f00e371f c0f2ea02 41 24 a0".replace(" ", ""),
        1,
        data={"type": "position", "in_trip": True, "fix_failed": False, "battery_voltage": 4.0,
              "latitude": 52.3702, "longitude": 4.8952, "heading": 90.0, "speed_kmh": 36},
        measurements=(("latitude", 52.3702), ("longitude", 4.8952), ("speed", 10.0), ("battery_voltage", 4.0)),
    ),
    Example(
        "fix failed: previous position kept under cached",
        "f00e371f c0f2ea02 02 00 a0".replace(" ", ""),
        1,
        data={"type": "position", "in_trip": False, "fix_failed": True, "battery_voltage": 4.0,
              "cached": {"latitude": 52.3702, "longitude": 4.8952, "heading": 0.0, "speed_kmh": 0}},
        measurements=(("battery_voltage", 4.0),),
    ),
    Example(
        "downlink accepted, firmware 1.5",
        "8c0105",
        2,
        data={"type": "downlink_ack", "sequence": 12, "accepted": True, "firmware_major": 1, "firmware_minor": 5},
    ),
    Example(
        "statistics bit field",
        "45060aa0c5c0083c0a041a",
        3,
        data={"type": "statistics", "initial_battery_voltage": 4.5, "tx_count": 3200, "trip_count": 640,
              "gps_successes": 2880, "gps_fails": 96, "average_gps_fix_s": 35, "average_gps_fail_s": 120,
              "average_gps_freshen_s": 10, "wakeups_per_trip": 4, "uptime_weeks": 52},
    ),
    Example(
        "compact position, man down, 35 km/h heading east",
        "10371f f3ea02 3a 90 05".replace(" ", ""),
        4,
        data={"type": "position", "in_trip": True, "fix_failed": False, "man_down": True, "battery_voltage": 3.6,
              "latitude": 52.3702272, "longitude": 4.8952064, "heading": 90, "speed_kmh": 35},
        measurements=(("latitude", 52.3702272), ("speed", 9.722222), ("battery_voltage", 3.6)),
    ),
    Example(
        "compact position south of the equator",
        "00d5fa f3ea02 00 90 00".replace(" ", ""),
        4,
        data={"type": "position", "in_trip": False, "fix_failed": False, "man_down": False, "battery_voltage": 3.6,
              "latitude": -8.6704128, "longitude": 4.8952064, "heading": 0, "speed_kmh": 0},
        measurements=(("latitude", -8.6704128),),
    ),
    Example("cut-off position", "0030edec0032244500", 1, errors=("fPort 1 frame needs 11 bytes, has 9",)),
    Example("cut-off compact position", "10371ff3ea02", 4, errors=("fPort 4 frame needs 9 bytes, has 6",)),
    Example("empty acknowledgement", "", 2, errors=("fPort 2 frame needs 3 bytes, has 0",)),
    Example("wrong fPort", "8c0105", 10, errors=("unsupported fPort 10",)),
    Example("no fPort", "8c0105", None, errors=("unsupported fPort None",)),
)
