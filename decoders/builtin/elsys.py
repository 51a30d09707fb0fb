"""Elsys ERS / ERS CO2 / ELT family: a frame is a run of type-tagged fields.

Layout from Elsys' public payload document: each field is one type byte followed by a
fixed-size big-endian value (0x01 temperature int16 0.1 °C, 0x02 humidity uint8 %, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from decoders.contract import DecodeResult, DeviceType, Example, Measurement, measurements_from

DEVICE = DeviceType(
    id="elsys",
    vendor="Elsys",
    model="ERS / ERS CO2 / ERS Sound / ELT-2 / EMS",
    description="Indoor climate, CO2, light, motion, sound and external-probe sensors (type-tagged frames)",
    protocols=("lorawan",),
    version="1",
)

MEASUREMENTS = (
    "temperature", "humidity", "illuminance", "motion", "co2", "battery_voltage",
    "analog_input", "pulse_count", "temperature_external", "distance", "occupancy",
    "leak", "pressure", "noise", "tvoc", "door_open", "latitude", "longitude",
)


def _int(b: bytes, signed: bool = False) -> int:
    return int.from_bytes(b, "big", signed=signed)


Reader = Callable[[bytes], dict[str, Any]]

# type byte -> (size, reader)
_FIELDS: dict[int, tuple[int, Reader]] = {
    0x01: (2, lambda b: {"temperature": _int(b, True) / 10}),
    0x02: (1, lambda b: {"humidity": b[0]}),
    0x03: (3, lambda b: {"x": _int(b[0:1], True), "y": _int(b[1:2], True), "z": _int(b[2:3], True)}),
    0x04: (2, lambda b: {"light": _int(b)}),
    0x05: (1, lambda b: {"motion": b[0]}),
    0x06: (2, lambda b: {"co2": _int(b)}),
    0x07: (2, lambda b: {"vdd": _int(b)}),
    0x08: (2, lambda b: {"analog1": _int(b)}),
    0x09: (6, lambda b: {"lat": _int(b[0:3], True) / 10000, "long": _int(b[3:6], True) / 10000}),
    0x0A: (2, lambda b: {"pulse1": _int(b)}),
    0x0B: (4, lambda b: {"pulseAbs": _int(b)}),
    0x0C: (2, lambda b: {"externalTemperature": _int(b, True) / 10}),
    0x0D: (1, lambda b: {"digital": b[0]}),
    0x0E: (2, lambda b: {"distance": _int(b)}),
    0x0F: (1, lambda b: {"accMotion": b[0]}),
    0x10: (4, lambda b: {"irInternalTemperature": _int(b[0:2], True) / 10,
                         "irExternalTemperature": _int(b[2:4], True) / 10}),
    0x11: (1, lambda b: {"occupancy": b[0]}),
    0x12: (1, lambda b: {"waterleak": b[0]}),
    0x14: (4, lambda b: {"pressure": _int(b) / 1000}),
    0x15: (2, lambda b: {"soundPeak": b[0], "soundAvg": b[1]}),
    0x16: (2, lambda b: {"pulse2": _int(b)}),
    0x17: (4, lambda b: {"pulseAbs2": _int(b)}),
    0x18: (2, lambda b: {"analog2": _int(b)}),
    0x19: (2, lambda b: {"externalTemperature2": _int(b, True) / 10}),
    0x1A: (1, lambda b: {"digital2": b[0]}),
    0x1B: (4, lambda b: {"analogUv": _int(b, True)}),
    0x1C: (2, lambda b: {"tvoc": _int(b)}),
    0x3D: (4, lambda b: {"debug": _int(b)}),
}


def decode(payload: bytes, fport: int | None) -> DecodeResult:
    """Walk the type-tagged fields; an unknown type or a cut-off field stops with an error."""
    if not payload:
        return DecodeResult(errors=["empty payload"])
    data: dict[str, Any] = {}
    i = 0
    while i < len(payload):
        tag = payload[i]
        if tag == 0x3E:  # settings frame: the rest of the payload
            data["settings"] = payload[i + 1 :].hex()
            break
        field = _FIELDS.get(tag)
        if field is None:
            return DecodeResult(data=data, errors=[f"unknown field type 0x{tag:02x} at byte {i}"])
        size, read = field
        value = payload[i + 1 : i + 1 + size]
        if len(value) < size:
            message = f"field 0x{tag:02x} at byte {i} needs {size} bytes, has {len(value)}"
            return DecodeResult(data=data, errors=[message])
        data.update(read(value))
        i += 1 + size
    return DecodeResult(data=data)


_NORMALIZED = {
    "temperature": ("temperature", 1),
    "humidity": ("humidity", 1),
    "light": ("illuminance", 1),
    "motion": ("motion", 1),
    "co2": ("co2", 1),
    "vdd": ("battery_voltage", 0.001),
    "analog1": ("analog_input", 0.001),
    "pulseAbs": ("pulse_count", 1),
    "externalTemperature": ("temperature_external", 1),
    "distance": ("distance", 0.001),
    "occupancy": ("occupancy", 1),
    "waterleak": ("leak", 1),
    "pressure": ("pressure", 1),
    "soundAvg": ("noise", 1),
    "tvoc": ("tvoc", 1),
    "digital": ("door_open", 1),
    "lat": ("latitude", 1),
    "long": ("longitude", 1),
}


def normalize(data: dict[str, Any]) -> list[Measurement]:
    """Elsys' native fields as vocabulary measurements; states from their documented values.

    * occupancy (0x11): 0 free, 1 pending (motion seen, not yet occupied), 2 occupied: occupied is 1.
    * water leak (0x12): a level 0-255, 0 dry (the EMS reports e.g. 17): any other level is a leak.
    * digital input (0x0D): documented as 1 or 0: any other value is read as 1 (input high).
    The raw values stay in ``data`` under Elsys' names, comparable with Elsys' own decoder.
    """
    states = {key: int(data[key] == 2 if key == "occupancy" else data[key] != 0)
              for key in _STATES if isinstance(data.get(key), int)}
    return measurements_from({**data, **states} if states else data, _NORMALIZED)


_STATES = ("occupancy", "waterleak", "digital")


EXAMPLES = (
    Example(
        "ERS: temperature, humidity, light, motion, vdd (REFERENCE.md)",
        "0101170231 04008b 0508 070e3d".replace(" ", ""),
        5,
        data={"temperature": 27.9, "humidity": 49, "light": 139, "motion": 8, "vdd": 3645},
        measurements=(("temperature", 27.9), ("humidity", 49), ("illuminance", 139),
                      ("motion", 8), ("battery_voltage", 3.645)),
    ),
    Example(
        "ERS CO2: negative temperature and CO2",
        "01ff9c 0225 06044c".replace(" ", ""),
        5,
        data={"temperature": -10.0, "humidity": 37, "co2": 1100},
        measurements=(("temperature", -10.0), ("co2", 1100)),
    ),
    Example(
        "ELT-2: external temperature, water leak, occupancy",
        "0c00fa 1201 1102".replace(" ", ""),
        5,
        data={"externalTemperature": 25.0, "waterleak": 1, "occupancy": 2},
        measurements=(("temperature_external", 25.0), ("leak", 1), ("occupancy", 1)),
    ),
    Example(
        # 12 11: water leak level 17 is a leak (state 1, not 17); 0a 1101 then 0a 2111: pulse1, the last wins
        "EMS: temperature, humidity, accelerometer, water leak, pulses (Elsys' published example)",
        "0100e2022903012705 0a1101 1211 0a2111".replace(" ", ""),
        1,
        data={"temperature": 22.6, "humidity": 41, "x": 1, "y": 39, "z": 5, "pulse1": 8465, "waterleak": 17},
        measurements=(("temperature", 22.6), ("humidity", 41.0), ("leak", 1)),
    ),
    Example(
        "EMS Door: accelerometer, relative and absolute pulses (Elsys' published example)",
        "03012705 0a1101 0b000a0011".replace(" ", ""),
        1,
        data={"x": 1, "y": 39, "z": 5, "pulse1": 4353, "pulseAbs": 655377},
        measurements=(("pulse_count", 655377),),
    ),
    Example(
        "ERS Sound: temperature, humidity, light, motion, sound peak and average (Elsys' published example)",
        "0100e20229040027050615 0101".replace(" ", ""),
        1,
        data={"temperature": 22.6, "humidity": 41, "light": 39, "motion": 6, "soundPeak": 1, "soundAvg": 1},
        measurements=(("temperature", 22.6), ("illuminance", 39.0), ("motion", 6), ("noise", 1.0)),
    ),
    Example("dry water leak sensor, digital input high (0x01) and low", "1200 0d01".replace(" ", ""), 1,
            data={"waterleak": 0, "digital": 1}, measurements=(("leak", 0), ("door_open", 1))),
    Example("occupancy pending (1) is not occupied", "1101", 1, data={"occupancy": 1},
            measurements=(("occupancy", 0),)),
    Example("empty frame", "", 5, errors=("empty payload",)),
    Example("unknown field type", "01011799", 5, errors=("unknown field type 0x99",)),
    Example("cut-off field", "010117 0601".replace(" ", ""), 5, errors=("needs 2 bytes",)),
)
