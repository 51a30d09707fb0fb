"""Decentlab DL-series sensors: one frame format shared by the whole product line.

Layout from Decentlab's public decoders (github.com/decentlab/decentlab-decoders) and product
data sheets: byte 0 protocol version (2), bytes 1-2 device id, bytes 3-4 a sensor-flags bitmask,
then for each set flag, lowest bit first, that sensor's group of big-endian uint16 words. The last
group of every model is the battery voltage in mV. Data frames arrive on fPort 1.
Each model only declares its groups and the conversion of their words.

Compared with Decentlab's own decoders (DL-SHT35.js, DL-MBX.js, DL-PR26 (Pmin=0.0,Pmax=1.0).js) on their
example frames (all in EXAMPLES) and 200 mutated frames each: every value both produce agrees (SHT35 within
the 0.005 of ours rounding to two decimals). Ours refuses what theirs decodes into NaN: a cut-off group.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from decoders.catalog import Decoder
from decoders.contract import DecodeResult, DeviceType, Example, Measurement, failure, measurements_from

PROTOCOL_VERSION = 2
HEADER = 5  # version, device id, flags
DATA_PORT = 1

Convert = Callable[[list[int]], dict[str, Any]]
Group = tuple[int, Convert]  # (number of uint16 words, conversion)

_BATTERY: Group = (1, lambda x: {"battery_voltage": x[0] / 1000})


def _words(payload: bytes, start: int, count: int) -> list[int]:
    return [int.from_bytes(payload[i : i + 2], "big") for i in range(start, start + 2 * count, 2)]


def _walk(payload: bytes, fport: int | None, groups: tuple[Group, ...]) -> DecodeResult:
    """Header, then the groups whose flag is set; a cut-off group stops with an error."""
    if len(payload) < HEADER:
        return failure(f"frame too short: {len(payload)} bytes, the header needs {HEADER}")
    if payload[0] != PROTOCOL_VERSION:
        return failure(f"unknown protocol version {payload[0]}, expected {PROTOCOL_VERSION}")
    flags = int.from_bytes(payload[3:5], "big")
    data: dict[str, Any] = {"protocol_version": payload[0], "device_id": int.from_bytes(payload[1:3], "big")}
    warnings: list[str] = []
    if fport not in (None, DATA_PORT):
        warnings.append(f"unexpected fPort {fport}: Decentlab sends data on fPort {DATA_PORT}")
    pos = HEADER
    for bit, (count, convert) in enumerate(groups):
        if not flags >> bit & 1:
            continue
        if len(payload) < pos + 2 * count:
            message = f"sensor group {bit} at byte {pos} needs {2 * count} bytes, has {len(payload) - pos}"
            return DecodeResult(data=data, warnings=warnings, errors=[message])
        data.update(convert(_words(payload, pos, count)))
        pos += 2 * count
    unknown = flags >> len(groups)
    if unknown:
        warnings.append(f"unknown sensor flags 0x{unknown << len(groups):04x}: their values are not decoded")
    elif pos < len(payload):
        warnings.append(f"{len(payload) - pos} bytes after the last sensor group are ignored")
    return DecodeResult(data=data, warnings=warnings)


def _decoder(slug: str, model: str, description: str, measurements: tuple[str, ...], groups: tuple[Group, ...],
             normalized: Mapping[str, tuple[str, float]], examples: tuple[Example, ...]) -> Decoder:
    device = DeviceType(id=f"decentlab-{slug}", vendor="Decentlab", model=model, description=description)

    def decode(payload: bytes, fport: int | None) -> DecodeResult:
        return _walk(payload, fport, groups)

    def normalize(data: dict[str, Any]) -> list[Measurement]:
        return measurements_from(data, normalized)

    return Decoder(device, measurements, (*examples, *_common_examples()), decode, normalize)


def _common_examples() -> tuple[Example, ...]:
    """Broken frames every model answers the same way."""
    return (
        Example("empty frame", "", 1, errors=("frame too short: 0 bytes",)),
        Example("header cut off", "02030e00", 1, errors=("frame too short: 4 bytes, the header needs 5",)),
        Example("protocol version 1", "01030e00020c60", 1, errors=("unknown protocol version 1, expected 2",)),
        Example("battery group cut off", "02030e00020c", 1, errors=("sensor group 1 at byte 5 needs 2 bytes, has 1",)),
    )


def _sht35(x: list[int]) -> dict[str, Any]:
    # Sensirion SHT3x conversion, as in Decentlab's decoder
    return {"air_temperature": round(175 * x[0] / 65535 - 45, 2), "air_humidity": round(100 * x[1] / 65535, 2)}


SHT35 = _decoder(
    "dl-sht35", "DL-SHT35", "Air temperature and humidity sensor with radiation shield (Sensirion SHT35)",
    ("temperature", "humidity", "battery_voltage"),
    ((2, _sht35), _BATTERY),
    {"air_temperature": ("temperature", 1), "air_humidity": ("humidity", 1), "battery_voltage": ("battery_voltage", 1)},
    (
        Example(
            # T = 175*0x64a0/65535 - 45 = 175*25760/65535 - 45 = 23.79; RH = 100*0x79b1/65535 = 100*31153/65535
            # = 47.54; battery 0x0c60 = 3168 mV
            "temperature, humidity and battery (vendor sample, device 782)",
            "02030e000364a079b10c60",
            1,
            data={"protocol_version": 2, "device_id": 782, "air_temperature": 23.79, "air_humidity": 47.54,
                  "battery_voltage": 3.168},
            measurements=(("temperature", 23.79), ("humidity", 47.54), ("battery_voltage", 3.168)),
        ),
        Example("battery only (vendor sample, flags 0x0002)", "02030e00020c60", 1,
                data={"protocol_version": 2, "device_id": 782, "battery_voltage": 3.168},
                measurements=(("battery_voltage", 3.168),)),
        Example(
            # T = 175*0x2000/65535 - 45 = 175*8192/65535 - 45 = -23.12; RH = 100*0xffff/65535 = 100
            "frost and saturated air, sent on an unexpected fPort (warning only)",
            "02030e00012000ffff",
            2,
            data={"protocol_version": 2, "device_id": 782, "air_temperature": -23.12, "air_humidity": 100.0},
            measurements=(("temperature", -23.12), ("humidity", 100.0)),
        ),
        Example("SHT35 group cut off", "02030e000364a079", 1, errors=("sensor group 0 at byte 5 needs 4 bytes",)),
    ),
)

MBX = _decoder(
    "dl-mbx", "DL-MBX", "Ultrasonic distance / level sensor (MaxBotix), e.g. for bins, snow or water levels",
    ("distance", "battery_voltage"),
    ((2, lambda x: {"distance": x[0], "number_of_valid_samples": x[1]}), _BATTERY),
    {"distance": ("distance", 0.001), "battery_voltage": ("battery_voltage", 1)},
    (
        Example(
            # distance 0x04d2 = 1234 mm from 0x0001 = 1 valid sample; battery 0x0bb1 = 2993 mV
            "distance, samples and battery (vendor sample, device 303)",
            "02012f000304d200010bb1",
            1,
            data={"protocol_version": 2, "device_id": 303, "distance": 1234, "number_of_valid_samples": 1,
                  "battery_voltage": 2.993},
            measurements=(("distance", 1.234), ("battery_voltage", 2.993)),
        ),
        Example("battery only (vendor sample)", "02012f00020bb1", 1,
                data={"protocol_version": 2, "device_id": 303, "battery_voltage": 2.993}),
        Example(
            "unknown sensor flag 0x0004 after the known groups (warning only)",
            "02012f00070fa0000a0bb8",
            1,
            data={"protocol_version": 2, "device_id": 303, "distance": 4000, "number_of_valid_samples": 10,
                  "battery_voltage": 3.0},
            measurements=(("distance", 4.0), ("battery_voltage", 3.0)),
        ),
    ),
)


def _pr26(x: list[int]) -> dict[str, Any]:
    # Decentlab's formulas with the parameters of their reference decoder, Pmin = 0 and Pmax = 1 bar:
    # p = (x0 - 16384) / 32768 * (Pmax - Pmin) + Pmin; T = (x1 - 384) * 0.003125 - 50 (0.003125 = 1/320)
    return {"pressure": (x[0] - 16384) / 32768, "temperature": round((x[1] - 384) / 320 - 50, 6)}


PR26 = _decoder(
    "dl-pr26", "DL-PR26",
    "Pressure / liquid level and temperature sensor (Keller 26 transducer); pressure in bar for the 0...1 bar "
    "range of Decentlab's reference decoder: other ranges scale as Pmin + pressure * (Pmax - Pmin)",
    ("water_pressure", "temperature_external", "battery_voltage"),
    ((2, _pr26), _BATTERY),
    {"pressure": ("water_pressure", 100_000), "temperature": ("temperature_external", 1),
     "battery_voltage": ("battery_voltage", 1)},
    (
        Example(
            # p = (0x3e80 - 16384) / 32768 = (16000 - 16384) / 32768 = -0.01171875 bar;
            # T = (0x6017 - 384) / 320 - 50 = (24599 - 384) / 320 - 50 = 25.671875; battery 0x0c7f = 3199 mV
            "pressure, temperature and battery (vendor sample, device 359)",
            "02016700033e8060170c7f",
            1,
            data={"protocol_version": 2, "device_id": 359, "pressure": -0.01171875, "temperature": 25.671875,
                  "battery_voltage": 3.199},
            measurements=(("water_pressure", -1171.875), ("temperature_external", 25.671875),
                          ("battery_voltage", 3.199)),
        ),
        Example("battery only (vendor sample)", "02016700020c7f", 1,
                data={"protocol_version": 2, "device_id": 359, "battery_voltage": 3.199}),
        Example(
            # p = (0x6000 - 16384) / 32768 = (24576 - 16384) / 32768 = 0.25 bar = 25000 Pa;
            # T = (0x1080 - 384) / 320 - 50 = (4224 - 384) / 320 - 50 = -38
            "quarter of the range below freezing",
            "020167000160001080",
            1,
            data={"protocol_version": 2, "device_id": 359, "pressure": 0.25, "temperature": -38.0},
            measurements=(("water_pressure", 25000.0), ("temperature_external", -38.0)),
        ),
    ),
)

DECODERS = [SHT35, MBX, PR26]
