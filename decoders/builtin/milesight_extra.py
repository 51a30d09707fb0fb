"""More Milesight devices cities deploy: soil probe, door contact, leak detector, PIR + daylight sensor.

Same [channel_id, channel_type, value] frames as ``decoders.builtin.milesight``, whose walker, device
information channels, shared temperature/humidity/history readers and common examples are reused here
(they are underscore-named there, imported on purpose rather than copied). Channel layouts from
Milesight's public SensorDecoders repository (EM500-SMTC, WS301, EM300-SLD, WS202); values little-endian.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from decoders.builtin.milesight import (
    _HISTORY,
    _HUMIDITY,
    _TEMPERATURE,
    Fields,
    Reader,
    _decoder,
    _device,
    _history,
    _int,
    _state,
    state_value,
)
from decoders.catalog import Decoder
from decoders.contract import DeviceType, Example

_SERIAL_6: Fields = {(0xFF, 0x08): (6, lambda b: {"sn": b.hex()})}  # WS series: 6-byte serial number
_SENSOR_ERRORS = {0xFFFF: "collection failed", 0xFFFD: "out of range"}


def _checked(name: str, divisor: int = 1, signed: bool = False) -> Reader:
    """A uint16/int16 reading where 0xFFFF and 0xFFFD are sensor error codes, not values."""

    def read(b: bytes) -> dict[str, Any]:
        error = _SENSOR_ERRORS.get(_int(b))
        if error is not None:
            return {f"{name}_error": error}
        value = _int(b, signed)
        return {name: value / divisor if divisor != 1 else value}

    return read


def _model(device: DeviceType, fields: Fields, normalized: Mapping[str, tuple[str, float]],
           examples: tuple[Example, ...]) -> Decoder:
    """A Milesight model whose measurements are exactly what its own mapping names."""
    measurements = tuple(dict.fromkeys(name for name, _ in normalized.values()))
    return _decoder(device, measurements, fields, examples, normalized)


_ALARMS = {0: "threshold alarm release", 1: "threshold alarm", 2: "mutation alarm"}
# The vendor's codec compares the signed temperature with 0xffff, which never matches: its 0xffff reads
# as -0.1 °C. Ours reports the documented "collection failed" (as the vendor's own history branch does).
_SMTC_TEMPERATURE = _checked("temperature", 10, signed=True)
_MOISTURE = _checked("moisture", 100)
_EC = _checked("ec")

EM500_SMTC = _model(
    _device("em500-smtc", "EM500-SMTC", "Soil moisture, temperature and electrical conductivity sensor"),
    {
        (0x03, 0x67): (2, _SMTC_TEMPERATURE),
        (0x04, 0x68): (1, lambda b: {"moisture": b[0] / 2}),  # older firmware, 0.5 % steps
        (0x04, 0xCA): (2, _MOISTURE),  # 0.01 % steps
        (0x05, 0x7F): (2, _EC),  # uS/cm
        (0x83, 0xD7): (5, lambda b: {"temperature": _int(b[0:2], True) / 10,
                                     "temperature_mutation": _int(b[2:4], True) / 10,
                                     "temperature_alarm": _ALARMS.get(b[4], f"unknown {b[4]}")}),
        _HISTORY: (10, _history(lambda b: {**_EC(b[0:2]), **_SMTC_TEMPERATURE(b[2:4]), **_MOISTURE(b[4:6])})),
    },
    {"battery": ("battery", 1), "temperature": ("soil_temperature", 1), "moisture": ("soil_moisture", 1),
     "ec": ("conductivity", 1)},
    (
        Example(
            "battery, temperature, moisture, EC (vendor sample)",
            "017564 03671901 046873 057ff000".replace(" ", ""),
            85,
            data={"battery": 100, "temperature": 28.1, "moisture": 57.5, "ec": 240},
            measurements=(("battery", 100), ("soil_temperature", 28.1), ("soil_moisture", 57.5),
                          ("conductivity", 240)),
        ),
        Example("moisture in 0.01 % steps, frozen soil", "04ca6816 0367ceff".replace(" ", ""), 85,
                data={"moisture": 57.36, "temperature": -5.0},
                measurements=(("soil_moisture", 57.36), ("soil_temperature", -5.0))),
        Example("EC probe failure code", "057fffff 04cafdff".replace(" ", ""), 85,
                data={"ec_error": "collection failed", "moisture_error": "out of range"}),
        Example("temperature mutation alarm", "83d719013200 02".replace(" ", ""), 85,
                data={"temperature": 28.1, "temperature_mutation": 5.0, "temperature_alarm": "mutation alarm"},
                measurements=(("soil_temperature", 28.1),)),
        Example(
            "historical record",
            "20ce00f15365 f000 1901 6816".replace(" ", ""),
            85,
            data={"history": [{"timestamp": 1700000000, "ec": 240, "temperature": 28.1, "moisture": 57.36}]},
        ),
        Example("cut-off EC", "057ff0", 85, errors=("channel 0x05 type 0x7f at byte 0 needs 2 bytes, has 1",)),
        Example("older firmware: moisture in 0.5 % steps", "046865 057ff000".replace(" ", ""), 85,
                data={"moisture": 50.5, "ec": 240}, measurements=(("soil_moisture", 50.5),)),
        Example("distance is not an EM500-SMTC channel: skipped, EC kept", "0382e803 057ff000".replace(" ", ""), 85,
                data={"ec": 240}),
        Example("history record of another model's length stops the walk", "057ff000 20ce00f15365f000", 85,
                errors=("channel 0x20 type 0xce at byte 4 needs 10 bytes, has 6",)),
    ),
)

WS301 = _model(
    _device("ws301", "WS301", "Magnetic door / window contact with tamper detection"),
    {
        **_SERIAL_6,
        (0x03, 0x00): (1, _state("magnet_status")),  # 0 closed, 1 open
        (0x04, 0x00): (1, _state("tamper_status")),  # 0 installed, 1 removed
    },
    {"battery": ("battery", 1), "magnet_status": ("door_open", 1)},
    (
        Example("battery, door open, installed", "017564 030001 040000".replace(" ", ""), 85,
                data={"battery": 100, "magnet_status": 1, "tamper_status": 0},
                measurements=(("battery", 100), ("door_open", 1))),
        Example("door closed, removed from its mount", "030000 040001".replace(" ", ""), 85,
                data={"magnet_status": 0, "tamper_status": 1}, measurements=(("door_open", 0),)),
        Example("6-byte serial number", "ff08 6136d1932460".replace(" ", ""), 85, data={"sn": "6136d1932460"}),
        Example("undocumented magnet byte 0xc0 is open, never 192", "0300c0", 85, data={"magnet_status": 1},
                measurements=(("door_open", 1),)),
        # The vendor's README prints "installed" for 040001, against its own table and codec (1: uninstalled).
        Example("battery, open, removed (vendor sample)", "017564 030001 040001".replace(" ", ""), 85,
                data={"battery": 100, "magnet_status": 1, "tamper_status": 1},
                measurements=(("battery", 100), ("door_open", 1))),
        Example("battery, open, installed (vendor codec sample)", "01755D030001040000", 85,
                data={"battery": 93, "magnet_status": 1, "tamper_status": 0}),
        Example("temperature is not a WS301 channel", "03671901", 85, errors=("unknown channel 0x03 type 0x67",)),
    ),
)

EM300_SLD = _model(
    _device("em300-sld", "EM300-SLD", "Spot leak detector with temperature and humidity"),
    {
        **_TEMPERATURE,
        **_HUMIDITY,
        (0x05, 0x00): (1, _state("leakage_status")),  # 0 normal, 1 leak
        _HISTORY: (8, _history(lambda b: {"temperature": _int(b[0:2], True) / 10, "humidity": b[2] / 2,
                                          **state_value("leakage_status", b[3])})),
    },
    {"battery": ("battery", 1), "temperature": ("temperature", 1), "humidity": ("humidity", 1),
     "leakage_status": ("leak", 1)},
    (
        Example("battery, temperature, humidity, no leak (vendor sample)", "01755c 03673401 046865 050000"
                .replace(" ", ""), 85,
                data={"battery": 92, "temperature": 30.8, "humidity": 50.5, "leakage_status": 0},
                measurements=(("battery", 92), ("temperature", 30.8), ("humidity", 50.5), ("leak", 0))),
        Example("leak", "050001", 85, data={"leakage_status": 1}, measurements=(("leak", 1),)),
        Example("undocumented leak byte 0x11 is a leak, never 17", "050011", 85, data={"leakage_status": 1},
                measurements=(("leak", 1),)),
        Example("undocumented leak byte in a historical record", "20ce9e74466310015d11", 85,
                data={"history": [{"timestamp": 1665561758, "temperature": 27.2, "humidity": 46.5,
                                   "leakage_status": 1}]}),
        Example("historical record with leak (vendor sample)", "20ce9e74466310015d01", 85,
                data={"history": [{"timestamp": 1665561758, "temperature": 27.2, "humidity": 46.5,
                                   "leakage_status": 1}]}),
        Example("cut-off historical record", "20ce9e74466310015d", 85, errors=("needs 8 bytes, has 7",)),
    ),
)

WS202 = _model(
    _device("ws202", "WS202", "PIR motion sensor with daylight detection"),
    {
        **_SERIAL_6,
        (0x03, 0x00): (1, _state("pir")),  # 0 normal, 1 triggered
        (0x04, 0x00): (1, _state("daylight")),  # 0 dim, 1 bright
    },
    {"battery": ("battery", 1), "pir": ("motion", 1)},
    (
        Example("battery, motion, dark (vendor sample)", "017510 030001 040000".replace(" ", ""), 85,
                data={"battery": 16, "pir": 1, "daylight": 0},
                measurements=(("battery", 16), ("motion", 1))),
        Example("no motion, bright", "030000 040001".replace(" ", ""), 85,
                data={"pir": 0, "daylight": 1}, measurements=(("motion", 0),)),
        Example("humidity is not a WS202 channel", "046865", 85, errors=("unknown channel 0x04 type 0x68",)),
        Example("battery, motion, dark (vendor codec sample)", "01755C030001040000", 85,
                data={"battery": 92, "pir": 1, "daylight": 0}),
        Example("undocumented PIR byte is motion, never 255", "0300ff", 85, data={"pir": 1},
                measurements=(("motion", 1),)),
    ),
)

DECODERS = [EM500_SMTC, WS301, EM300_SLD, WS202]
