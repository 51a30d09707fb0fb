"""Cayenne Low Power Payload (LPP v1): a frame is a run of [channel, type, value] fields.

Layout from myDevices' public LPP documentation: one channel byte, one type byte (an IPSO
object id minus 3200), then a fixed-size big-endian value. Also the common extensions
(voltage, concentration, power, distance, energy, direction, switch) of the widely used
Arduino libraries. Data keys are ``<name>_<channel>``, e.g. ``temperature_3``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from decoders.contract import NUMBER, DecodeResult, DeviceType, Example, Measurement, measurement
from decoders.vocabulary import STATE, quantity

DEVICE = DeviceType(
    id="cayenne-lpp",
    vendor="myDevices",
    model="Cayenne Low Power Payload",
    description="Generic multi-channel sensor frames in the Cayenne LPP v1 format (with common extensions)",
    protocols=("lorawan",),
    version="1",
)

MEASUREMENTS = (
    "digital_input", "analog_input", "illuminance", "occupancy", "temperature", "humidity",
    "pressure", "battery_voltage", "co2", "power", "distance", "energy",
    "latitude", "longitude", "altitude",
)


def _int(b: bytes, signed: bool = False) -> int:
    return int.from_bytes(b, "big", signed=signed)


def _scaled(divisor: int, signed: bool = False) -> Callable[[bytes], float]:
    # int / int is correctly rounded, so 272 / 10 == 27.2 exactly as written in the examples
    return lambda b: _int(b, signed) / divisor


def _xyz(divisor: int) -> Callable[[bytes], dict[str, float]]:
    return lambda b: {axis: _int(b[k : k + 2], True) / divisor for k, axis in ((0, "x"), (2, "y"), (4, "z"))}


def _gps(b: bytes) -> dict[str, float]:
    return {
        "latitude": _int(b[0:3], True) / 10_000,
        "longitude": _int(b[3:6], True) / 10_000,
        "altitude": _int(b[6:9], True) / 100,
    }


Reader = Callable[[bytes], Any]

# type byte -> (name, size, reader)
_TYPES: dict[int, tuple[str, int, Reader]] = {
    0: ("digital_input", 1, _int),
    1: ("digital_output", 1, _int),
    2: ("analog_input", 2, _scaled(100, signed=True)),
    3: ("analog_output", 2, _scaled(100, signed=True)),
    101: ("illuminance", 2, _int),
    102: ("presence", 1, _int),
    103: ("temperature", 2, _scaled(10, signed=True)),
    104: ("humidity", 1, _scaled(2)),
    113: ("accelerometer", 6, _xyz(1000)),
    115: ("barometer", 2, _scaled(10)),
    116: ("voltage", 2, _scaled(100)),
    125: ("concentration", 2, _int),
    128: ("power", 2, _int),
    130: ("distance", 4, _scaled(1000)),
    131: ("energy", 4, _scaled(1000)),
    132: ("direction", 2, _int),
    134: ("gyrometer", 6, _xyz(100)),
    136: ("gps", 9, _gps),
    142: ("switch", 1, _int),
}


def decode(payload: bytes, fport: int | None) -> DecodeResult:
    """Walk the [channel, type, value] fields; an unknown type or a cut-off field stops with an error."""
    if not payload:
        return DecodeResult(errors=["empty payload"])
    data: dict[str, Any] = {}
    i = 0
    while i < len(payload):
        channel = payload[i]
        if i + 1 >= len(payload):
            return DecodeResult(data=data, errors=[f"channel {channel} at byte {i} has no type byte"])
        kind = payload[i + 1]
        spec = _TYPES.get(kind)
        if spec is None:
            message = f"unknown type {kind} (0x{kind:02x}) at byte {i + 1}, channel {channel}"
            return DecodeResult(data=data, errors=[message])
        name, size, read = spec
        value = payload[i + 2 : i + 2 + size]
        if len(value) < size:
            message = f"{name} on channel {channel} at byte {i} needs {size} bytes, has {len(value)}"
            return DecodeResult(data=data, errors=[message])
        data[f"{name}_{channel}"] = read(value)
        i += 2 + size
    return DecodeResult(data=data)


# LPP name -> vocabulary name, for the scalar types that have one
_NORMALIZED = {
    "digital_input": "digital_input",
    "analog_input": "analog_input",
    "illuminance": "illuminance",
    "presence": "occupancy",
    "temperature": "temperature",
    "humidity": "humidity",
    "barometer": "pressure",
    "voltage": "battery_voltage",
    "concentration": "co2",
    "power": "power",
    "distance": "distance",
    "energy": "energy",
}


def normalize(data: dict[str, Any]) -> list[Measurement]:
    """One measurement per channel; several channels may carry the same quantity.

    LPP gives digital input and presence a 1-bit value in a whole byte: any non-zero byte is state 1.
    """
    out: list[Measurement] = []
    for key, value in data.items():
        name, _, _channel = key.rpartition("_")
        if name == "gps" and isinstance(value, dict):
            for part in ("latitude", "longitude", "altitude"):
                if isinstance(value.get(part), NUMBER):
                    out.append(measurement(part, value[part]))
            continue
        target = _NORMALIZED.get(name)
        if target is not None and isinstance(value, NUMBER):
            out.append(measurement(target, int(value != 0) if quantity(target).kind == STATE else value))
    return out


EXAMPLES = (
    Example(
        "two temperature channels (LPP documentation)",
        "03670110056700ff",
        1,
        data={"temperature_3": 27.2, "temperature_5": 25.5},
        measurements=(("temperature", 27.2), ("temperature", 25.5)),
    ),
    Example(
        "negative temperature (LPP documentation)",
        "0167ffd7",
        1,
        data={"temperature_1": -4.1},
        measurements=(("temperature", -4.1),),
    ),
    Example(
        "accelerometer (LPP documentation)",
        "067104d2fb2e0000",
        1,
        data={"accelerometer_6": {"x": 1.234, "y": -1.234, "z": 0.0}},
    ),
    Example(
        "GPS (LPP documentation)",
        "018806765ff2960a0003e8",
        1,
        data={"gps_1": {"latitude": 42.3519, "longitude": -87.9094, "altitude": 10.0}},
        measurements=(("latitude", 42.3519), ("longitude", -87.9094), ("altitude", 10.0)),
    ),
    Example(
        "humidity, illuminance, presence, barometer, digital and analog in/out",
        "056851 02650190 036601 04732797 070001 080100 0902ff38 0a0304d2".replace(" ", ""),
        1,
        data={"humidity_5": 40.5, "illuminance_2": 400, "presence_3": 1, "barometer_4": 1013.5,
              "digital_input_7": 1, "digital_output_8": 0, "analog_input_9": -2.0, "analog_output_10": 12.34},
        measurements=(("humidity", 40.5), ("illuminance", 400), ("occupancy", 1), ("pressure", 1013.5),
                      ("digital_input", 1), ("analog_input", -2.0)),
    ),
    Example(
        "extensions: voltage, concentration, power, distance, energy, direction, switch, gyrometer",
        "01740172 027d01a4 038004b0 0482000004d2 05830001e240 06840167 078e01 08860064ff9c0000".replace(" ", ""),
        1,
        data={"voltage_1": 3.7, "concentration_2": 420, "power_3": 1200, "distance_4": 1.234,
              "energy_5": 123.456, "direction_6": 359, "switch_7": 1,
              "gyrometer_8": {"x": 1.0, "y": -1.0, "z": 0.0}},
        measurements=(("battery_voltage", 3.7), ("co2", 420), ("power", 1200), ("distance", 1.234),
                      ("energy", 123.456)),
    ),
    Example("empty frame", "", 1, errors=("empty payload",)),
    Example("unknown type", "03670110059600", 1, errors=("unknown type 150 (0x96) at byte 5",)),
    Example("cut-off value", "016701", 1, errors=("temperature on channel 1 at byte 0 needs 2 bytes, has 1",)),
    Example("channel without type", "0367011005", 1, errors=("channel 5 at byte 4 has no type byte",)),
)
