"""Adeunis TEMP / Temp 3 and PULSE NB-IoT: a frame is a code byte, a status byte, then a frame body.

Layouts from Adeunis' public technical reference manuals (TEMP, Temp 3, PULSE V3 LoRaWAN/Sigfox and
PULSE V3 NB-IoT, whose user guide names the same 0x46 and 0x5A/0x5B data frames) and Adeunis' codec
library (@adeunis/codecs, and its Temp 4 / Pulse 4 builds in the TTN device repository): big-endian
values; status byte bits 7-5 frame counter, bit 1 low battery, bit 0 configuration done, bits 3-4
product-specific. Bit 2 differs between generations:

* TEMP (ARF8180, frames 0x43 and the 8-byte 0x30): hardware error.
* Temp 3 / Temp 4 (0x57, 0x58, the short 0x30) and PULSE V3 / Pulse 4 (every frame): the timestamp flag.
  When set, the frame ends with a uint32 of seconds since 2013-01-01T00:00:00Z, decoded as ``timestamp``
  (ISO 8601, UTC); the vendor's codec reads it so and reports no hardware error for these products.
  An 8-byte 0x30 with the flag set and one channel is Temp 4's timestamped keep-alive, not TEMP's.

Temperatures are int16 tenths of °C, 0x8000 meaning "no valid measure" (probe missing). Pulse counters
are uint32, their history uint16 differences to the previous (older) value, as in the vendor's codec.
PULSE NB-IoT frames may carry the 13-byte NB-IoT header (8-byte IMEI, signal quality, uint32 global
frame counter) before the frame code; it is decoded under ``nbiot``.
0x10 (product) and 0x20 (network) configuration frames are kept as raw register bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from decoders.catalog import Decoder
from decoders.contract import DecodeResult, DeviceType, Example, Measurement, measurements_from

_INVALID = 0x8000
_TIMESTAMP_FLAG = 0x04
_EPOCH_2013 = 1_356_998_400  # 2013-01-01T00:00:00Z, Adeunis' time origin
NBIOT_HEADER = 13


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
    """One frame code: its name, minimum length (code and status included), body reader, status bits.

    ``bit2`` names status bit 2: ``timestamp`` (Temp 3/4, PULSE: a timestamp ends the frame),
    ``hardware_error`` (TEMP) or None (configuration frames, shared by both generations: not reported).
    """

    name: str
    size: int
    read: Callable[[bytes], dict[str, Any]]
    flags: Mapping[int, str] = field(default_factory=dict)
    bit2: str | None = "timestamp"


def _configuration(name: str) -> _Frame:
    return _Frame(name, 2, lambda p: {"registers": p[2:].hex()}, bit2=None)


_CONFIGURATION = {0x10: _configuration("product_configuration"), 0x20: _configuration("network_configuration")}
_RAW = ("product_configuration", "network_configuration")
_COMMON_BITS = {0x02: "low_battery", 0x01: "configuration_done"}


def _timestamp(b: bytes) -> str:
    """Seconds since 2013-01-01T00:00:00Z as ISO 8601 in UTC."""
    return datetime.fromtimestamp(_EPOCH_2013 + _u(b), UTC).isoformat().replace("+00:00", "Z")


def _decode(payload: bytes, select: Callable[[bytes], _Frame | None]) -> DecodeResult:
    """Frame code and status byte, then the body the frame code names; a broken body is an error."""
    if len(payload) < 2:
        return DecodeResult(errors=[f"frame needs a code and a status byte, has {len(payload)} bytes"])
    frame = select(payload)
    if frame is None:
        return DecodeResult(errors=[f"unknown frame code 0x{payload[0]:02x}"])
    status = payload[1]
    stamped = frame.bit2 == "timestamp" and bool(status & _TIMESTAMP_FLAG)
    size = frame.size + 4 if stamped else frame.size
    if len(payload) < size:
        return DecodeResult(errors=[f"frame 0x{payload[0]:02x} needs {size} bytes, has {len(payload)}"])
    try:
        body = frame.read(payload[:-4] if stamped else payload)
    except _FrameError as exc:
        return DecodeResult(errors=[f"frame 0x{payload[0]:02x}: {exc}"])
    bit2 = {_TIMESTAMP_FLAG: frame.bit2} if frame.bit2 else {}
    flags = {"frame_counter": status >> 5, **_bits(status, {**bit2, **_COMMON_BITS}), **_bits(status, frame.flags)}
    data: dict[str, Any] = {"frame": frame.name, "status": flags}
    if stamped:
        data["timestamp"] = _timestamp(payload[-4:])
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
    0x43: _Frame("data", 8, _temp_probes, _TEMP_FLAGS, bit2="hardware_error"),
    0x57: _Frame("periodic_data", 4, _temp3_samples, _TEMP3_FLAGS),
    0x58: _Frame("alarm", 5, _temp3_alarm, _TEMP3_FLAGS),
    **_CONFIGURATION,
}
_TEMP_KEEP_ALIVE = _Frame("keep_alive", 8, _temp_probes, _TEMP_FLAGS, bit2="hardware_error")
_TEMP3_KEEP_ALIVE = _Frame("keep_alive", 4, _temp3_keep_alive, _TEMP3_FLAGS)


def _temp_frame(p: bytes) -> _Frame | None:
    """0x30 is TEMP's keep-alive when 8 bytes long (same body as 0x43), Temp 3/4's otherwise.

    Temp 4's one-channel keep-alive with a timestamp is 8 bytes too: timestamp flag set, two-channel bit clear.
    """
    if p[0] == 0x30:
        temp4_stamped = p[1] & (_TIMESTAMP_FLAG | 0x10) == _TIMESTAMP_FLAG
        return _TEMP_KEEP_ALIVE if len(p) == 8 and not temp4_stamped else _TEMP3_KEEP_ALIVE
    return _TEMP_FRAMES.get(p[0])


_TEMP_NORMALIZED = {"temperature_1": ("temperature", 1.0), "temperature_2": ("temperature_external", 1.0)}


def _temp_normalize(data: dict[str, Any]) -> list[Measurement]:
    """Probe 1 is the ambient (or first) probe, probe 2 the external one; a deactivated probe is skipped."""
    active: dict[str, Any] = {key: data[key] for key in ("temperature_1", "temperature_2")
                              if key in data and data.get(f"probe_{key[-1]}_active") is not False}
    return measurements_from(active, _TEMP_NORMALIZED)


def _device(slug: str, model: str, description: str, protocols: tuple[str, ...]) -> DeviceType:
    return DeviceType(id=f"adeunis-{slug}", vendor="Adeunis", model=model, description=description, protocols=protocols)


def _status_with(bit2: str | None, counter: int, flags: Mapping[str, bool]) -> dict[str, Any]:
    """The decoded status byte for an example: every flag False unless given."""
    base = {"frame_counter": counter, **({bit2: False} if bit2 else {}), "low_battery": False,
            "configuration_done": False}
    return {**base, **flags}


def _status(counter: int, **flags: bool) -> dict[str, Any]:
    """Status of a Temp 3/4 or PULSE frame: bit 2 is the timestamp flag."""
    return _status_with("timestamp", counter, flags)


def _temp_v2_status(counter: int, **flags: bool) -> dict[str, Any]:
    """Status of a TEMP frame: bit 2 is a hardware error."""
    return _status_with("hardware_error", counter, flags)


_TEMP_V2 = {"probe_1_alarm": False, "probe_2_alarm": False}


def _temp3(counter: int, two: bool, low_battery: bool = False, timestamp: bool = False) -> dict[str, Any]:
    return _status(counter, low_battery=low_battery, timestamp=timestamp, configuration_inconsistency=False,
                   two_channels=two)


TEMP = Decoder(
    _device("temp", "TEMP / Temp 3 / Temp 4 (ARF8180)", "Temperature sensor with internal and external probes",
            ("lorawan",)),
    ("temperature", "temperature_external"),
    (
        Example("TEMP data frame, probe 2 deactivated (vendor sample)", "43401100f4200000", 1,
                data={"frame": "data", "status": _temp_v2_status(2, **_TEMP_V2), "probe_1_id": 1, "temperature_1": 24.4,
                      "probe_1_active": True, "probe_2_id": 2, "temperature_2": 0.0, "probe_2_active": False},
                measurements=(("temperature", 24.4),)),
        Example("TEMP data frame, old firmware, probe 2 missing (vendor sample)", "43400100f4028000", 1,
                data={"frame": "data", "status": _temp_v2_status(2, **_TEMP_V2), "probe_1_id": 0, "temperature_1": 24.4,
                      "probe_2_id": 0, "temperature_2": None},
                measurements=(("temperature", 24.4),)),
        Example("TEMP keep-alive, negative external temperature (vendor sample)", "30401100f421ffd8", 1,
                data={"frame": "keep_alive", "status": _temp_v2_status(2, **_TEMP_V2), "probe_1_id": 1,
                      "temperature_1": 24.4, "probe_1_active": True, "probe_2_id": 2, "temperature_2": -4.0,
                      "probe_2_active": True},
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
        Example(
            # status 0x96: two channels, timestamp (bit 2), low battery; 0x14aba3e9 s after 2013-01-01 = 2023-12-28
            "Temp 4 periodic data with a timestamp (Adeunis' published example, issue 15)",
            "579601b3ff9c01f4ffff14aba3e9", 1,
            data={"frame": "periodic_data", "status": _temp3(4, True, low_battery=True, timestamp=True),
                  "timestamp": "2023-12-28T19:22:17Z", "temperature_1": 43.5, "temperature_2": -10.0,
                  "history": [{"temperature_1": 50.0, "temperature_2": -0.1}]},
            measurements=(("temperature", 43.5), ("temperature_external", -10.0))),
        Example("Temp 4 one-channel keep-alive with a timestamp (8 bytes, like TEMP's)", "302401b314aba3e9", 1,
                data={"frame": "keep_alive", "status": _temp3(1, False, timestamp=True),
                      "timestamp": "2023-12-28T19:22:17Z", "temperature_1": 43.5},
                measurements=(("temperature", 43.5),)),
        Example("Temp 4 two-channel alarm with a timestamp", "58940100280200321 4aba3e9".replace(" ", ""), 1,
                data={"frame": "alarm", "status": _temp3(4, True, timestamp=True), "timestamp": "2023-12-28T19:22:17Z",
                      "alarm_1": "high_threshold", "temperature_1": 4.0, "alarm_2": "low_threshold",
                      "temperature_2": 5.0}),
        Example("network configuration frame kept raw", "20920501", 1,
                data={"frame": "network_configuration", "status": _status_with(None, 4, {"low_battery": True}),
                      "registers": "0501"}),
        Example("Temp 4 timestamp cut off", "579614ab", 1, errors=("frame 0x57 needs 8 bytes, has 4",)),
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
    """Counter now (uint32), then uint16 differences to each older counter value, newest first.

    Unsigned as in the vendor's codec: a counter only counts up. An older value below zero means the
    counter wrapped or was reset; it is kept (negative) rather than guessed.
    """

    def read(p: bytes) -> dict[str, Any]:
        if len(p) % 2:
            raise _FrameError(f"{len(p) - 6} history bytes is not a whole number of uint16 differences")
        counter = _u(p[2:6])
        older: list[int] = []
        for k in range(6, len(p), 2):
            counter -= _u(p[k : k + 2])
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


def _pulse_frame(p: bytes) -> _Frame | None:
    return _PULSE_FRAMES.get(p[0])


def _nbiot_header(h: bytes) -> dict[str, Any]:
    return {"imei": h[0:8].hex(), "signal_quality": h[8], "global_frame_counter": _u(h[9:13])}


def _decode_pulse_nbiot(payload: bytes) -> DecodeResult:
    """A PULSE frame, with or without the 13-byte NB-IoT header in front.

    The header is tried first when the first byte is no frame code (an IMEI's first byte rarely is),
    else the bare frame first; when the first reading fails, the other is tried.
    """
    def with_header() -> DecodeResult:
        result = _decode(payload[NBIOT_HEADER:], _pulse_frame)
        result.data = {"nbiot": _nbiot_header(payload[:NBIOT_HEADER]), **result.data} if result.ok else {}
        return result

    def bare() -> DecodeResult:
        return _decode(payload, _pulse_frame)

    if len(payload) < NBIOT_HEADER + 2:   # too short for a header: a bare frame or nothing
        return bare()
    first, second = (bare, with_header) if payload[:1] and payload[0] in _PULSE_FRAMES else (with_header, bare)
    result = first()
    if result.ok:
        return result
    other = second()
    return other if other.ok else result


def _pulse_normalize(data: dict[str, Any]) -> list[Measurement]:
    return measurements_from(data, {"counter_a": ("pulse_count", 1)})


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
        Example(
            # 13-byte header: IMEI 1122334455667788, signal quality 3, global frame counter 0x26 = 38;
            # then 0x5a, status 0x67 (timestamp, low battery, configured), counter 295, uint16 differences
            "Pulse 4 NB-IoT channel A with header, history and timestamp (Adeunis' published example)",
            "1122334455667788030000002 65a67000001270001000200030004 14aba3e9".replace(" ", ""), None,
            data={"nbiot": {"imei": "1122334455667788", "signal_quality": 3, "global_frame_counter": 38},
                  "frame": "data_channel_a", "status": _status(3, low_battery=True, configuration_done=True,
                                                               timestamp=True, **_PULSE),
                  "timestamp": "2023-12-28T19:22:17Z", "counter_a": 295, "history_a": [294, 292, 289, 285]},
            measurements=(("pulse_count", 295),)),
        Example("data frame behind an NB-IoT header", "0351234567890123 1f 000000c8 46 80 0000009f00000002"
                .replace(" ", ""), None,
                data={"nbiot": {"imei": "0351234567890123", "signal_quality": 31, "global_frame_counter": 200},
                      "frame": "data", "status": _status(4, **_PULSE), "counter_a": 159, "counter_b": 2},
                measurements=(("pulse_count", 159),)),
        Example(
            # 0xfff0 = 65520 is a large unsigned difference, not -16 (the vendor's codec reads uint16)
            "history differences are unsigned", "5a0000010000fff0", None,
            data={"frame": "data_channel_a", "status": _status(0, **_PULSE), "counter_a": 65536,
                  "history_a": [16]}),
        Example("one byte", "46", None, errors=("has 1 bytes",)),
        Example("NB-IoT header with a cut-off frame", "03512345678901231f000000c8468000", None,
                errors=("frame 0x46 needs 10 bytes, has 3",)),
        Example("cut-off data frame", "46800000009f0000", None, errors=("frame 0x46 needs 10 bytes, has 8",)),
        Example("odd history length", "5a200000012700", None, errors=("not a whole number of uint16",)),
        Example("TEMP frame code is not a PULSE frame", "43401100f4200000", None, errors=("unknown frame code 0x43",)),
    ),
    lambda payload, fport: _decode_pulse_nbiot(payload),
    _pulse_normalize,
)

PULSE = Decoder(
    _device("pulse", "Pulse 4 (LoRaWAN)", "Two-channel pulse counter for water, gas and energy meters",
            ("lorawan",)),
    ("pulse_count",),
    (
        Example("channel A with history and timestamp (Adeunis' published example)",
                "5a67000001270001000200030004 14aba3e9".replace(" ", ""), 1,
                data={"frame": "data_channel_a", "status": _status(3, low_battery=True, configuration_done=True,
                                                                   timestamp=True, **_PULSE),
                      "timestamp": "2023-12-28T19:22:17Z", "counter_a": 295, "history_a": [294, 292, 289, 285]},
                measurements=(("pulse_count", 295),)),
        Example("data frame with a timestamp", "46840000009f0000000214aba3e9", 1,
                data={"frame": "data", "status": _status(4, timestamp=True, **_PULSE),
                      "timestamp": "2023-12-28T19:22:17Z", "counter_a": 159, "counter_b": 2},
                measurements=(("pulse_count", 159),)),
        Example("keep-alive timestamp cut off", "30e41504000300020001000014ab", 1,
                errors=("frame 0x30 needs 15 bytes, has 14",)),
        Example("unknown frame code", "43401100f4200000", 1, errors=("unknown frame code 0x43",)),
    ),
    lambda payload, fport: _decode(payload, _pulse_frame),
    _pulse_normalize,
)

DECODERS = [TEMP, PULSE_NBIOT, PULSE]
