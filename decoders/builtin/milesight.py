"""Milesight AM and EM series: a frame is a run of [channel_id, channel_type, value] fields.

Layouts from Milesight's public payload documents (SensorDecoders repository): values are
little-endian; battery 0x01 0x75 uint8 %, temperature 0x03 0x67 int16 0.1 °C, humidity
0x04 0x68 uint8 0.5 %RH, ... Channel 0xff carries device information (no measurements) and
0x20 0xce a historical record whose layout depends on the model. One walker serves the family;
each model declares which channel/type pairs it knows.

A pair the model does not know is skipped with a warning when its length is documented for the family
(``_milesight_lengths``): the readings before and after it are kept (the vendor's own AM307 example
carries AM107 channels). Only where the frame cannot be walked further (a pair of unknown length, a cut-off field)
does decoding stop with an error; the readings before that point stay in ``data`` beside the error.

States (PIR, door, leak, tamper, tilt, ...) are 0 or 1 from the documented value, never the raw byte.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from decoders.builtin._milesight_lengths import FIELD_LENGTHS
from decoders.catalog import Decoder
from decoders.contract import DecodeResult, DeviceType, Example, Measurement, measurements_from


def _int(b: bytes, signed: bool = False) -> int:
    return int.from_bytes(b, "little", signed=signed)


Reader = Callable[[bytes], dict[str, Any]]
Fields = Mapping[tuple[int, int], tuple[int, Reader]]

WARNING = "_warning"   # a reader may add this key: the walker moves it to the result's warnings

_CLASSES = {0: "Class A", 1: "Class B", 2: "Class C", 3: "Class CtoB"}


def state_value(name: str, raw: int) -> dict[str, Any]:
    """A documented 0/1 state as 0 or 1. An undocumented non-zero byte counts as 1, as the vendor's earlier
    codecs read it (the current ones say "unknown"), and is reported: never the raw byte (WS301 ``0300c0``
    gave ``door_open`` 192)."""
    if raw <= 1:
        return {name: raw}
    return {name: 1, WARNING: f"{name} 0x{raw:02x} is not a documented value (0 or 1), read as 1"}


def _state(name: str) -> Reader:
    return lambda b: state_value(name, b[0])


# (channel_id, channel_type) -> (size, reader); shared by every model
_INFO: dict[tuple[int, int], tuple[int, Reader]] = {
    (0xFF, 0x01): (1, lambda b: {"protocol_version": b[0]}),
    (0xFF, 0x09): (2, lambda b: {"hardware_version": f"v{b[0]}.{b[1] >> 4}"}),
    (0xFF, 0x0A): (2, lambda b: {"firmware_version": f"v{b[0]}.{b[1]}"}),
    (0xFF, 0x0B): (1, lambda b: {"device_status": "on"}),  # sent once after power-on
    (0xFF, 0x0F): (1, lambda b: {"lorawan_class": _CLASSES.get(b[0], f"unknown {b[0]}")}),
    (0xFF, 0x16): (8, lambda b: {"sn": b.hex()}),
    (0xFF, 0xFE): (1, lambda b: {"reset_event": "reset"}),
    (0xFF, 0xFF): (2, lambda b: {"tsl_version": f"v{b[0]}.{b[1]}"}),
    (0x01, 0x75): (1, lambda b: {"battery": b[0]}),
}
_TEMPERATURE: Fields = {(0x03, 0x67): (2, lambda b: {"temperature": _int(b, True) / 10})}
_HUMIDITY: Fields = {(0x04, 0x68): (1, lambda b: {"humidity": b[0] / 2})}
_DISTANCE: Fields = {(0x03, 0x82): (2, lambda b: {"distance": _int(b)})}  # mm
_HISTORY = (0x20, 0xCE)


def _history(read: Reader) -> Reader:
    """A historical record: uint32 LE unix timestamp then model-specific values, kept in a list."""

    def record(b: bytes) -> dict[str, Any]:
        values = read(b[4:])
        warning = values.pop(WARNING, None)
        out: dict[str, Any] = {"history": [{"timestamp": _int(b[0:4]), **values}]}
        if warning is not None:
            out[WARNING] = warning
        return out

    return record


def _walk(payload: bytes, fields: Fields, model: str) -> DecodeResult:
    """Walk the channel/type fields; skip (with a warning) a pair of documented length the model does not
    decode; stop with an error, keeping what was read, where the frame cannot be walked further."""
    if not payload:
        return DecodeResult(errors=["empty payload"])
    data: dict[str, Any] = {}
    warnings: list[str] = []
    i = 0
    end = len(payload)
    while i < end:
        channel = payload[i]
        if i + 1 >= end:
            return DecodeResult(data, warnings, [f"channel 0x{channel:02x} at byte {i} has no type byte"])
        kind = payload[i + 1]
        field = fields.get((channel, kind))
        size = field[0] if field is not None else FIELD_LENGTHS.get((channel, kind))
        if size is None:
            message = (f"unknown channel 0x{channel:02x} type 0x{kind:02x} at byte {i}: its length is not known,"
                       f" {end - i} bytes left undecoded")
            return DecodeResult(data, warnings, [message])
        if i + 2 + size > end:
            message = (f"channel 0x{channel:02x} type 0x{kind:02x} at byte {i} needs {size} bytes,"
                       f" has {end - i - 2}")
            return DecodeResult(data, warnings, [message])
        if field is None:
            warnings.append(f"skipped channel 0x{channel:02x} type 0x{kind:02x} at byte {i} (a {size}-byte field):"
                            f" not decoded for the {model}")
        else:
            values = field[1](payload[i + 2 : i + 2 + size])
            warning = values.pop(WARNING, None)
            if warning is not None:
                warnings.append(f"channel 0x{channel:02x} type 0x{kind:02x} at byte {i}: {warning}")
            for key, item in values.items():
                if key == "history":
                    data.setdefault("history", []).extend(item)
                else:
                    data[key] = item
        i += 2 + size
    return DecodeResult(data, warnings)


_NORMALIZED = {
    "light_level": ("light_level", 1),   # AM307 level 0..5, not lux
    "tvoc": ("voc_index", 1),            # AM307 0x08 0x7d: IAQ level (firmware default)
    "tvoc_ugm3": ("tvoc_mass", 1),       # AM307 with its firmware set to ug/m3
    "battery": ("battery", 1),
    "temperature": ("temperature", 1),
    "humidity": ("humidity", 1),
    "co2": ("co2", 1),
    "pressure": ("pressure", 1),
    "distance": ("distance", 0.001),
    "pir": ("motion", 1),
}


def normalize(data: dict[str, Any]) -> list[Measurement]:
    """Current values only: ``history`` records carry their own timestamps and are not measurements."""
    return measurements_from(data, _NORMALIZED)


def _decoder(device: DeviceType, measurements: tuple[str, ...], fields: Fields, examples: tuple[Example, ...],
             normalized: Mapping[str, tuple[str, float]] = _NORMALIZED) -> Decoder:
    """A Milesight model: the shared walker over the shared information channels plus the model's own,
    and its native-to-vocabulary mapping (by default the family's)."""
    table: Fields = {**_INFO, **fields}

    model = device.model

    def decode(payload: bytes, fport: int | None) -> DecodeResult:
        return _walk(payload, table, model)

    def normalize_model(data: dict[str, Any]) -> list[Measurement]:
        return measurements_from(data, normalized)

    return Decoder(device, measurements, (*examples, *_common_examples()), decode, normalize_model)


def _device(slug: str, model: str, description: str) -> DeviceType:
    return DeviceType(id=f"milesight-{slug}", vendor="Milesight", model=model, description=description)


def _common_examples() -> tuple[Example, ...]:
    """Frames every model answers the same way: device information and broken frames."""
    info = "ff0bff ff0101 ff166136d19324600025 ff090110 ff0a0114 ff0f00".replace(" ", "")
    return (
        Example(
            "device information after power-on (no measurements)",
            info,
            85,
            data={"device_status": "on", "protocol_version": 1, "sn": "6136d19324600025",
                  "hardware_version": "v1.1", "firmware_version": "v1.20", "lorawan_class": "Class A"},
        ),
        Example("empty frame", "", 85, errors=("empty payload",)),
        Example("cut-off battery", "0175", 85, errors=("channel 0x01 type 0x75 at byte 0 needs 1 bytes, has 0",)),
        Example("unknown channel/type", "0175640e99", 85, errors=("unknown channel 0x0e type 0x99 at byte 3",)),
        Example("unknown channel/type of unknown length stops the walk", "0175640e9901020304", 85,
                errors=("unknown channel 0x0e type 0x99 at byte 3: its length is not known, 6 bytes left",)),
        Example("channel without type", "01756401", 85, errors=("channel 0x01 at byte 3 has no type byte",)),
    )


AM103 = _decoder(
    _device("am103", "AM103 / AM103L", "Indoor temperature, humidity and CO2 sensor"),
    ("battery", "temperature", "humidity", "co2"),
    {
        **_TEMPERATURE,
        **_HUMIDITY,
        (0x07, 0x7D): (2, lambda b: {"co2": _int(b)}),
        _HISTORY: (9, _history(lambda b: {"temperature": _int(b[0:2], True) / 10, "humidity": b[2] / 2,
                                          "co2": _int(b[3:5])})),
    },
    (
        Example(
            "battery, temperature, humidity, CO2 (vendor sample)",
            "0175640367180104686d077dc501",
            85,
            data={"battery": 100, "temperature": 28.0, "humidity": 54.5, "co2": 453},
            measurements=(("battery", 100), ("temperature", 28.0), ("humidity", 54.5), ("co2", 453)),
        ),
        Example("negative temperature", "03679cff", 85, data={"temperature": -10.0},
                measurements=(("temperature", -10.0),)),
        Example(
            "historical record",
            "20ce9e74466310015d5802",
            85,
            data={"history": [{"timestamp": 1665561758, "temperature": 27.2, "humidity": 46.5, "co2": 600}]},
        ),
        Example(
            "battery, temperature, humidity, CO2 (vendor codec sample)",
            "0175640367040104687B077DAC02",
            85,
            data={"battery": 100, "temperature": 26.0, "humidity": 61.5, "co2": 684},
        ),
        Example("distance is not an AM103 channel: skipped, battery kept", "0382e803017550", 85,
                data={"battery": 80}),
        Example("history record of another model's length stops the walk", "017550 20ce9e744663", 85,
                errors=("channel 0x20 type 0xce at byte 3 needs 9 bytes, has 4",)),
    ),
)

def _am307_record(tvoc: Reader) -> Reader:
    """An AM307 history record after its timestamp; TVOC as an IAQ level (0x20 0xce) or in ug/m3 (0x21 0xce)."""
    return lambda b: {
        "temperature": _int(b[0:2], True) / 10, "humidity": _int(b[2:4]) / 2, **state_value("pir", b[4]),
        "light_level": b[5], "co2": _int(b[6:8]), **tvoc(b[8:10]), "pressure": _int(b[10:12]) / 10,
    }


_TVOC_IAQ: Reader = lambda b: {"tvoc": _int(b) / 100}  # noqa: E731  IAQ level 1.00-5.00 (firmware default)
_TVOC_UGM3: Reader = lambda b: {"tvoc_ugm3": _int(b)}  # noqa: E731  firmware set to ug/m3; the vendor calls it "tvoc"

AM307 = _decoder(
    _device("am307", "AM307", "Indoor ambience sensor: temperature, humidity, PIR, light, CO2, TVOC, pressure"),
    ("battery", "temperature", "humidity", "motion", "light_level", "co2", "voc_index", "tvoc_mass", "pressure"),
    {
        **_TEMPERATURE,
        **_HUMIDITY,
        (0x05, 0x00): (1, _state("pir")),  # 0 idle, 1 triggered
        (0x06, 0xCB): (1, lambda b: {"light_level": b[0]}),  # level 0..5, not lux
        (0x07, 0x7D): (2, lambda b: {"co2": _int(b)}),
        (0x08, 0x7D): (2, _TVOC_IAQ),
        (0x08, 0xE6): (2, _TVOC_UGM3),
        (0x09, 0x73): (2, lambda b: {"pressure": _int(b) / 10}),
        (0x0E, 0x01): (1, _state("buzzer_status")),  # 0 off, 1 on
        _HISTORY: (16, _history(_am307_record(_TVOC_IAQ))),
        (0x21, 0xCE): (16, _history(_am307_record(_TVOC_UGM3))),
    },
    (
        Example(
            "all telemetry channels (vendor sample)",
            "0367EE00 04687C 050001 06CB02 077DA803 087D2500 09736627".replace(" ", ""),
            85,
            data={"temperature": 23.8, "humidity": 62.0, "pir": 1, "light_level": 2,
                  "co2": 936, "tvoc": 0.37, "pressure": 1008.6},
            measurements=(("temperature", 23.8), ("humidity", 62.0), ("motion", 1), ("light_level", 2),
                          ("co2", 936), ("voc_index", 0.37), ("pressure", 1008.6)),
        ),
        Example(
            "vendor codec sample with AM107 channels: skipped with warnings, nothing lost",
            "01755C03673401046865056A490006651C0079001400077DE704087D070009733F27",
            85,
            data={"battery": 92, "temperature": 30.8, "humidity": 50.5, "co2": 1255, "tvoc": 0.07,
                  "pressure": 1004.7},
            measurements=(("battery", 92), ("temperature", 30.8), ("humidity", 50.5), ("co2", 1255),
                          ("voc_index", 0.07), ("pressure", 1004.7)),
        ),
        Example("TVOC in ug/m3 (v2 firmware setting)", "08e6c800", 85, data={"tvoc_ugm3": 200},
                measurements=(("tvoc_mass", 200.0),)),
        Example("buzzer on", "0e0101", 85, data={"buzzer_status": 1}),
        Example(
            "historical record",
            "20ce00f15365e1005a00000326027800 9427".replace(" ", ""),
            85,
            data={"history": [{"timestamp": 1700000000, "temperature": 22.5, "humidity": 45.0, "pir": 0,
                               "light_level": 3, "co2": 550, "tvoc": 1.2, "pressure": 1013.2}]},
        ),
        Example(
            "historical record, TVOC in ug/m3",
            "21ce00f15365e1005a000103260278009427",
            85,
            data={"history": [{"timestamp": 1700000000, "temperature": 22.5, "humidity": 45.0, "pir": 1,
                               "light_level": 3, "co2": 550, "tvoc_ugm3": 120, "pressure": 1013.2}]},
        ),
        Example("cut-off pressure", "097366", 85, errors=("channel 0x09 type 0x73 at byte 0 needs 2 bytes, has 1",)),
    ),
)

EM300_TH = _decoder(
    _device("em300-th", "EM300-TH", "Temperature and humidity sensor"),
    ("battery", "temperature", "humidity"),
    {
        **_TEMPERATURE,
        **_HUMIDITY,
        _HISTORY: (8, _history(lambda b: {"temperature": _int(b[0:2], True) / 10, "humidity": b[2] / 2})),
    },
    (
        Example(
            "battery, temperature, humidity (vendor sample)",
            "01755c03673401046865",
            85,
            data={"battery": 92, "temperature": 30.8, "humidity": 50.5},
            measurements=(("battery", 92), ("temperature", 30.8), ("humidity", 50.5)),
        ),
        Example("negative temperature", "036738ff", 85, data={"temperature": -20.0},
                measurements=(("temperature", -20.0),)),
        Example(
            "historical record (vendor sample; last byte reserved)",
            "20ce9e74466310015d00",
            85,
            data={"history": [{"timestamp": 1665561758, "temperature": 27.2, "humidity": 46.5}]},
        ),
        Example("cut-off historical record", "20ce9e744663", 85, errors=("needs 8 bytes, has 4",)),
        Example("battery, temperature, humidity (vendor codec sample)", "0175640367040104687B", 85,
                data={"battery": 100, "temperature": 26.0, "humidity": 61.5}),
    ),
)

EM310_UDL = _decoder(
    _device("em310-udl", "EM310-UDL", "Ultrasonic distance / level sensor with tilt detection"),
    ("battery", "distance"),
    {
        **_DISTANCE,
        (0x04, 0x00): (1, _state("position")),  # 0 normal, 1 tilt
    },
    (
        Example(
            "battery, distance, tilted (vendor sample)",
            "01755c03824408040001",
            85,
            data={"battery": 92, "distance": 2116, "position": 1},
            measurements=(("battery", 92), ("distance", 2.116)),
        ),
        Example("distance, upright", "0382d007040000", 85, data={"distance": 2000, "position": 0},
                measurements=(("distance", 2.0),)),
        Example("no history on the EM310-UDL", "20ce00f15365dc05", 85, errors=("unknown channel 0x20 type 0xce",)),
        Example("undocumented position byte is tilt, not 0xc0", "0400c0", 85, data={"position": 1}),
    ),
)

EM500_UDL = _decoder(
    _device("em500-udl", "EM500-UDL", "Ultrasonic distance / level sensor"),
    ("battery", "distance"),
    {
        **_DISTANCE,
        _HISTORY: (6, _history(lambda b: {"distance": _int(b[0:2])})),
    },
    (
        Example(
            "battery and distance (vendor sample)",
            "01756403821e00",
            85,
            data={"battery": 100, "distance": 30},
            measurements=(("battery", 100), ("distance", 0.03)),
        ),
        Example(
            "two historical records",
            "20ce00f15365dc05 20ce10ff5365d007".replace(" ", ""),
            85,
            data={"history": [{"timestamp": 1700000000, "distance": 1500},
                              {"timestamp": 1700003600, "distance": 2000}]},
        ),
        Example("tilt is not an EM500-UDL channel: skipped, distance kept", "040001 03821e00".replace(" ", ""), 85,
                data={"distance": 30}),
        # 0x83 0xe9 (distance alarm: distance, mutation, alarm type) is skipped with a warning: the vendor's
        # codec divides its distances by 10 though 0x03 0x82 is whole mm, and no document settles the unit.
        Example("distance alarm is skipped, battery kept", "83e9d0070a000101755a", 85, data={"battery": 90}),
        Example("cut-off distance", "03821e", 85, errors=("channel 0x03 type 0x82 at byte 0 needs 2 bytes, has 1",)),
    ),
)

DECODERS = [AM103, AM307, EM300_TH, EM310_UDL, EM500_UDL]
