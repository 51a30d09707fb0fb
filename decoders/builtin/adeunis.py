"""Adeunis TEMP / Temp 3 and PULSE NB-IoT: a frame is a code byte, a status byte, then a frame body.

Layouts from Adeunis' public technical reference manuals (TEMP, Temp 3, PULSE V3 LoRaWAN/Sigfox and
PULSE V3 NB-IoT, whose user guide names the same 0x46 and 0x5A/0x5B data frames) and Adeunis' codec
library (@adeunis/codecs 1.3): big-endian values; status byte bits 7-5 frame counter, bit 2 hardware
error, bit 1 low battery, bit 0 configuration done, bits 3-4 product-specific. Temperatures are int16
tenths of °C, 0x8000 meaning "no valid measure" (probe missing). Pulse counters are uint32.
0x10 (product) and 0x20 (network) configuration frames are kept as raw register bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from decoders.catalog import Decoder
from decoders.contract import DecodeResult, DeviceType, Example, Measurement, measurements_from

_INVALID = 0x8000


class _FrameError(ValueError):
    """A frame whose body does not match its documented layout."""


def _u(b: bytes) -> int:
    return int.from_bytes(b, "big")


def _celsius(b: bytes) -> float | None:
    raw = _u(b)
    return None if raw == _INVALID else int.from_bytes(b, "big", signed=True) / 10


def _bits(byte: int, names: Mapping[int, str]) -> dict[str, bool]:
    return {name: bool(byte & mask) for mask, name in names.items()}


@dataclass(frozen=True, slots=True)
class _Frame:
    """One frame code: its name, minimum length (code and status included), body reader, status bits."""

    name: str
    size: int
    read: Callable[[bytes], dict[str, Any]]
    flags: Mapping[int, str] = field(default_factory=dict)


def _configuration(name: str) -> _Frame:
    return _Frame(name, 2, lambda p: {"registers": p[2:].hex()})


_CONFIGURATION = {0x10: _configuration("product_configuration"), 0x20: _configuration("network_configuration")}
_RAW = ("product_configuration", "network_configuration")


def _decode(payload: bytes, select: Callable[[bytes], _Frame | None]) -> DecodeResult:
    """Frame code and status byte, then the body the frame code names; a broken body is an error."""
    if len(payload) < 2:
        return DecodeResult(errors=[f"frame needs a code and a status byte, has {len(payload)} bytes"])
    frame = select(payload)
    if frame is None:
        return DecodeResult(errors=[f"unknown frame code 0x{payload[0]:02x}"])
    if len(payload) < frame.size:
        return DecodeResult(errors=[f"frame 0x{payload[0]:02x} needs {frame.size} bytes, has {len(payload)}"])
    status = payload[1]
    try:
        body = frame.read(payload)
    except _FrameError as exc:
        return DecodeResult(errors=[f"frame 0x{payload[0]:02x}: {exc}"])
    flags = _bits(status, {0x04: "hardware_error", 0x02: "low_battery", 0x01: "configuration_done"})
    data = {"frame": frame.name, "status": {"frame_counter": status >> 5, **flags, **_bits(status, frame.flags)}}
    data.update(body)
    warnings = [f"{key}: no valid measure (0x8000, probe missing?)" for key, v in body.items() if v is None]
    if frame.name in _RAW:
        warnings.append("configuration frame: register bytes kept raw")
    return DecodeResult(data=data, warnings=warnings)


# --- TEMP (data 0x43, keep-alive 0x30 of 8 bytes) and Temp 3 (0x57, 0x58, keep-alive of 4 or 6 bytes) ---

_TEMP_FLAGS = {0x08: "probe_1_alarm", 0x10: "probe_2_alarm"}
_TEMP3_FLAGS = {0x08: "configuration_inconsistency", 0x10: "two_channels"}
_ALARMS = {0: "none", 1: "high_threshold", 2: "low_threshold"}


def _temp_probes(p: bytes) -> dict[str, Any]:
    """TEMP: [id nibble, state bit] + int16 per probe; firmware <= 1.3.8 marks itself with 2 in probe 2's low nibble."""
    data: dict[str, Any] = {"probe_1_id": p[2] >> 4, "temperature_1": _celsius(p[3:5]),
                            "probe_2_id": p[5] >> 4, "temperature_2": _celsius(p[6:8])}
    if p[5] & 0x0F != 2:
        data.update(probe_1_active=bool(p[2] & 0x01), probe_2_active=bool(p[5] & 0x01))
    return data


def _channels(p: bytes) -> int:
    return 2 if p[1] & 0x10 else 1


def _temp3_samples(p: bytes) -> dict[str, Any]:
    """Temp 3 periodic data: one int16 per channel per sample, newest first; older samples go to ``history``."""
    n = _channels(p)
    body = p[2:]
    if not body or len(body) % (2 * n):
        raise _FrameError(f"{len(body)} data bytes is not a whole number of {n}-channel samples")
    samples = [{f"temperature_{c + 1}": _celsius(body[k + 2 * c : k + 2 * c + 2]) for c in range(n)}
               for k in range(0, len(body), 2 * n)]
    return {**samples[0], "history": samples[1:]} if len(samples) > 1 else samples[0]


def _temp3_keep_alive(p: bytes) -> dict[str, Any]:
    if len(p) != 2 + 2 * _channels(p):
        raise _FrameError(f"{len(p)} bytes, expected {2 + 2 * _channels(p)} for {_channels(p)} channel(s)")
    return {f"temperature_{c + 1}": _celsius(p[2 + 2 * c : 4 + 2 * c]) for c in range(_channels(p))}


def _temp3_alarm(p: bytes) -> dict[str, Any]:
    if len(p) < 2 + 3 * _channels(p):
        raise _FrameError(f"{len(p)} bytes, expected {2 + 3 * _channels(p)} for {_channels(p)} channel(s)")
    data: dict[str, Any] = {}
    for c in range(_channels(p)):
        k = 2 + 3 * c
        data[f"alarm_{c + 1}"] = _ALARMS.get(p[k], f"unknown {p[k]}")
        data[f"temperature_{c + 1}"] = _celsius(p[k + 1 : k + 3])
    return data


_TEMP_FRAMES = {
    0x43: _Frame("data", 8, _temp_probes, _TEMP_FLAGS),
    0x57: _Frame("periodic_data", 4, _temp3_samples, _TEMP3_FLAGS),
    0x58: _Frame("alarm", 5, _temp3_alarm, _TEMP3_FLAGS),
    **_CONFIGURATION,
}
_TEMP_KEEP_ALIVE = _Frame("keep_alive", 8, _temp_probes, _TEMP_FLAGS)
_TEMP3_KEEP_ALIVE = _Frame("keep_alive", 4, _temp3_keep_alive, _TEMP3_FLAGS)


def _temp_frame(p: bytes) -> _Frame | None:
    """0x30 is TEMP's keep-alive when 8 bytes long (same body as 0x43), Temp 3's otherwise."""
    if p[0] == 0x30:
        return _TEMP_KEEP_ALIVE if len(p) == 8 else _TEMP3_KEEP_ALIVE
    return _TEMP_FRAMES.get(p[0])


_TEMP_NORMALIZED = {"temperature_1": ("temperature", 1.0), "temperature_2": ("temperature_external", 1.0)}


def _temp_normalize(data: dict[str, Any]) -> list[Measurement]:
    """Probe 1 is the ambient (or first) probe, probe 2 the external one; a deactivated probe is skipped."""
    active: dict[str, Any] = {key: data[key] for key in ("temperature_1", "temperature_2")
                              if key in data and data.get(f"probe_{key[-1]}_active") is not False}
    return measurements_from(active, _TEMP_NORMALIZED)


def _device(slug: str, model: str, description: str, protocols: tuple[str, ...]) -> DeviceType:
    return DeviceType(id=f"adeunis-{slug}", vendor="Adeunis", model=model, description=description, protocols=protocols)


def _status(counter: int, **flags: bool) -> dict[str, Any]:
    """The decoded status byte for an example: every flag False unless given."""
    base = {"frame_counter": counter, "hardware_error": False, "low_battery": False, "configuration_done": False}
    return {**base, **flags}


_TEMP_V2 = {"probe_1_alarm": False, "probe_2_alarm": False}


def _temp3(counter: int, two: bool, low_battery: bool = False) -> dict[str, Any]:
    return _status(counter, low_battery=low_battery, configuration_inconsistency=False, two_channels=two)


TEMP = Decoder(
    _device("temp", "TEMP / Temp 3 (ARF8180)", "Temperature sensor with internal and external probes",
            ("lorawan",)),
    ("temperature", "temperature_external"),
    (
        Example("TEMP data frame, probe 2 deactivated (vendor sample)", "43401100f4200000", 1,
                data={"frame": "data", "status": _status(2, **_TEMP_V2), "probe_1_id": 1, "temperature_1": 24.4,
                      "probe_1_active": True, "probe_2_id": 2, "temperature_2": 0.0, "probe_2_active": False},
                measurements=(("temperature", 24.4),)),
        Example("TEMP data frame, old firmware, probe 2 missing (vendor sample)", "43400100f4028000", 1,
                data={"frame": "data", "status": _status(2, **_TEMP_V2), "probe_1_id": 0, "temperature_1": 24.4,
                      "probe_2_id": 0, "temperature_2": None},
                measurements=(("temperature", 24.4),)),
        Example("TEMP keep-alive, negative external temperature (vendor sample)", "30401100f421ffd8", 1,
                data={"frame": "keep_alive", "status": _status(2, **_TEMP_V2), "probe_1_id": 1, "temperature_1": 24.4,
                      "probe_1_active": True, "probe_2_id": 2, "temperature_2": -4.0, "probe_2_active": True},
                measurements=(("temperature", 24.4), ("temperature_external", -4.0))),
        Example("Temp 3 periodic data, two channels, low battery, an older sample (vendor sample)",
                "579201b3ff9c01f4ffff", 1,
                data={"frame": "periodic_data", "status": _temp3(4, True, low_battery=True), "temperature_1": 43.5,
                      "temperature_2": -10.0, "history": [{"temperature_1": 50.0, "temperature_2": -0.1}]},
                measurements=(("temperature", 43.5), ("temperature_external", -10.0))),
        Example("Temp 3 keep-alive, one channel (vendor sample)", "30e201b3", 1,
                data={"frame": "keep_alive", "status": _temp3(7, False, low_battery=True), "temperature_1": 43.5},
                measurements=(("temperature", 43.5),)),
        Example("Temp 3 alarm, two channels (vendor sample)", "5890000028020032", 1,
                data={"frame": "alarm", "status": _temp3(4, True), "alarm_1": "none", "temperature_1": 4.0,
                      "alarm_2": "low_threshold", "temperature_2": 5.0}),
        Example("network configuration frame kept raw", "20920501", 1,
                data={"frame": "network_configuration", "status": _status(4, low_battery=True), "registers": "0501"}),
        Example("empty frame", "", 1, errors=("has 0 bytes",)),
        Example("cut-off TEMP data frame", "43401100f4", 1, errors=("frame 0x43 needs 8 bytes, has 5",)),
        Example("Temp 3 samples not a whole number", "571001b301", 1, errors=("not a whole number",)),
        Example("keep-alive of the wrong length", "301001b3", 1, errors=("4 bytes, expected 6",)),
        Example("unknown frame code", "46800000009f00000002", 1, errors=("unknown frame code 0x46",)),
    ),
    lambda payload, fport: _decode(payload, _temp_frame),
    _temp_normalize,
)


# --- PULSE V3 NB-IoT: data 0x46, alarm 0x47, keep-alive 0x30, history per channel 0x5A / 0x5B ---

_PULSE_FLAGS = {0x08: "configuration_inconsistency"}
_KEEP_ALIVE_ALARMS = {0x01: "flow_alarm_a", 0x02: "flow_alarm_b", 0x04: "tamper_alarm_a", 0x08: "tamper_alarm_b",
                      0x10: "leak_alarm_a", 0x20: "leak_alarm_b"}


def _pulse_history(channel: str) -> Callable[[bytes], dict[str, Any]]:
    """Counter now (uint32), then int16 differences to each older counter value, newest first."""

    def read(p: bytes) -> dict[str, Any]:
        if len(p) % 2:
            raise _FrameError(f"{len(p) - 6} history bytes is not a whole number of int16 differences")
        counter = _u(p[2:6])
        older: list[int] = []
        for k in range(6, len(p), 2):
            counter -= int.from_bytes(p[k : k + 2], "big", signed=True)
            older.append(counter)
        return {f"counter_{channel}": _u(p[2:6]), f"history_{channel}": older}

    return read


_PULSE_FRAMES = {
    0x46: _Frame("data", 10, lambda p: {"counter_a": _u(p[2:6]), "counter_b": _u(p[6:10])}, _PULSE_FLAGS),
    0x47: _Frame("alarm", 6, lambda p: {"flow_a": _u(p[2:4]), "flow_b": _u(p[4:6])}, _PULSE_FLAGS),
    0x30: _Frame("keep_alive", 11, lambda p: {
        **_bits(p[2], _KEEP_ALIVE_ALARMS), "flow_max_a": _u(p[3:5]), "flow_max_b": _u(p[5:7]),
        "flow_min_a": _u(p[7:9]), "flow_min_b": _u(p[9:11])}, _PULSE_FLAGS),
    0x5A: _Frame("data_channel_a", 6, _pulse_history("a"), _PULSE_FLAGS),
    0x5B: _Frame("data_channel_b", 6, _pulse_history("b"), _PULSE_FLAGS),
    **_CONFIGURATION,
}


_PULSE = {"configuration_inconsistency": False}

PULSE_NBIOT = Decoder(
    _device("pulse-nbiot", "PULSE NB-IoT (PULSE V3)", "Two-channel pulse counter for water, gas and energy meters",
            ("nbiot",)),
    ("pulse_count",),
    (
        Example("data frame: both counters (vendor sample)", "46800000009f00000002", None,
                data={"frame": "data", "status": _status(4, **_PULSE), "counter_a": 159, "counter_b": 2},
                measurements=(("pulse_count", 159),)),
        Example("flow alarm in pulses per hour (manual sample)", "47a32904206c", None,
                data={"frame": "alarm", "status": _status(5, low_battery=True, configuration_done=True, **_PULSE),
                      "flow_a": 10500, "flow_b": 8300}),
        Example("keep-alive: alarms and 24 h flow extremes (vendor sample)", "30e0150400030002000100", None,
                data={"frame": "keep_alive", "status": _status(7, **_PULSE),
                      "flow_alarm_a": True, "flow_alarm_b": False, "tamper_alarm_a": True, "tamper_alarm_b": False,
                      "leak_alarm_a": True, "leak_alarm_b": False,
                      "flow_max_a": 1024, "flow_max_b": 768, "flow_min_a": 512, "flow_min_b": 256}),
        Example("channel A with history (vendor sample)", "5a20000001270001000200030004", None,
                data={"frame": "data_channel_a", "status": _status(1, **_PULSE), "counter_a": 295,
                      "history_a": [294, 292, 289, 285]},
                measurements=(("pulse_count", 295),)),
        Example("channel B without history", "5b000000ff00", None,
                data={"frame": "data_channel_b", "status": _status(0, **_PULSE), "counter_b": 65280, "history_b": []}),
        Example("one byte", "46", None, errors=("has 1 bytes",)),
        Example("cut-off data frame", "46800000009f0000", None, errors=("frame 0x46 needs 10 bytes, has 8",)),
        Example("odd history length", "5a200000012700", None, errors=("not a whole number of int16",)),
        Example("TEMP frame code is not a PULSE frame", "43401100f4200000", None, errors=("unknown frame code 0x43",)),
    ),
    lambda payload, fport: _decode(payload, lambda p: _PULSE_FRAMES.get(p[0])),
    lambda data: measurements_from(data, {"counter_a": ("pulse_count", 1)}),
)

DECODERS = [TEMP, PULSE_NBIOT]
