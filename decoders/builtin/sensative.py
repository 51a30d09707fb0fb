"""Sensative Strips (Comfort, Guard, Drip, Presence): report items behind a 2-byte history sequence number.

Layout from Sensative's public open-source translator (strips-lora-translator-open-source, MIT; the
"raw-translate" reference design and the data-driven "strips-translate"). Big-endian values.

* fPort 1, reports: uint16 history sequence number, then items: one type byte (bit 7 set when the
  item was also stored in the device history, bits 0-6 the report type) and a fixed-size value.
* fPort 2, history: uint16 sequence number of the first record, then records of uint32 seconds ago,
  a type byte and the value.
* fPort 11, settings answers: 0x02 + setting id + uint32 value, or 0x03 + status code.

DoorReport follows the reference decoder's comment: 1 means the door is closed (magnet present).
The check-in report (type 110) is the software version and four one-byte counters (start-ups, watchdog
resets, reboots after failed transmissions, bad conditions), as the reference decoder reads them.
Compared with that reference decoder (raw-translate.js) on the TTN example and 200 mutated frames: every
value both produce agrees; where ours answers an error (an unknown report type or a cut-off value) the
reference decoder reads past the end of the frame and reports NaN or skips the byte.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from decoders.contract import DecodeResult, DeviceType, Example, Measurement, measurements_from

DEVICE = DeviceType(
    id="sensative-strips",
    vendor="Sensative",
    model="Strips Comfort / Guard / Drip / Presence (LoRa)",
    description="Ultra-thin sensors: temperature, humidity, light, door contact, water leak, presence",
    protocols=("lorawan",),
    version="1",
)

MEASUREMENTS = ("battery", "temperature", "humidity", "illuminance", "door_open", "door_open_count", "leak",
                "occupancy")

Reader = Callable[[bytes], dict[str, Any]]


def _u(b: bytes) -> int:
    return int.from_bytes(b, "big")


def _celsius(b: bytes) -> float:
    return int.from_bytes(b, "big", signed=True) / 10


def _flag(name: str) -> tuple[int, Reader]:
    return 1, lambda b: {name: bool(b[0])}


def _uint(name: str, size: int) -> tuple[int, Reader]:
    return size, lambda b: {name: _u(b)}


def _alarm(prefix: str) -> tuple[int, Reader]:
    return 1, lambda b: {f"{prefix}_alarm_high": bool(b[0] & 0x01), f"{prefix}_alarm_low": bool(b[0] & 0x02)}


_DISINFECT = {0: "dirty", 1: "occupied", 2: "cleaning", 3: "clean"}

# report type (bits 0-6 of the type byte) -> (value size, reader)
_ITEMS: dict[int, tuple[int, Reader]] = {
    0: (0, lambda b: {}),  # empty report, e.g. after a button press
    1: _uint("battery", 1),  # %
    2: (2, lambda b: {"temperature": _celsius(b)}),
    3: _alarm("temperature"),
    4: (2, lambda b: {"average_temperature": _celsius(b)}),
    5: _alarm("average_temperature"),
    6: (1, lambda b: {"humidity": b[0] / 2}),
    7: _uint("lux", 2),
    8: _uint("lux2", 2),  # second lux range
    9: _flag("door_closed"),
    10: _flag("door_alarm"),
    11: _flag("tamper"),
    12: _flag("tamper_alarm"),
    13: _uint("flood", 1),  # relative wetness, %
    14: _flag("flood_alarm"),
    15: _uint("oil_alarm", 1),
    16: _flag("user_switch_alarm"),
    17: _uint("door_count", 2),
    18: _flag("presence"),
    19: _uint("ir_proximity", 2),
    20: _uint("ir_close_proximity", 2),
    21: _flag("close_proximity_alarm"),
    22: (1, lambda b: {"disinfect_state": _DISINFECT.get(b[0], f"unknown {b[0]}")}),
    80: (3, lambda b: {"humidity": b[0] / 2, "temperature": _celsius(b[1:3])}),
    81: (3, lambda b: {"humidity": b[0] / 2, "average_temperature": _celsius(b[1:3])}),
    82: (3, lambda b: {"door_closed": bool(b[0]), "temperature": _celsius(b[1:3])}),
    110: (8, lambda b: {"firmware_version": b[0:4].hex(), "start_up_count": b[4], "watchdog_count": b[5],
                        "stack_tx_fail_reboot_count": b[6], "bad_conditions_count": b[7]}),  # check-in confirmed
    112: _uint("capacitance_flood", 2),
    113: _uint("capacitance_pad", 2),
    114: _uint("capacitance_end", 2),
}


class _Incomplete(ValueError):
    """An item that is unknown or cut off."""


def _item(payload: bytes, i: int) -> tuple[dict[str, Any], int]:
    """The item whose type byte is at ``i``: its fields and the offset after it."""
    kind = payload[i] & 0x7F
    item = _ITEMS.get(kind)
    if item is None:
        raise _Incomplete(f"unknown report type {kind} at byte {i}")
    size, read = item
    value = payload[i + 1 : i + 1 + size]
    if len(value) < size:
        raise _Incomplete(f"report type {kind} at byte {i} needs {size} bytes, has {len(value)}")
    return read(value), i + 1 + size


def _reports(payload: bytes) -> dict[str, Any]:
    seq = _u(payload[0:2])
    data: dict[str, Any] = {"history_seq": seq}
    stored = 0
    i = 2
    while i < len(payload):
        stored += payload[i] >> 7
        fields, i = _item(payload, i)
        data.update(fields)
    data["prev_history_seq"] = (seq - stored) % 0x10000
    return data


def _history(payload: bytes) -> dict[str, Any]:
    seq = _u(payload[0:2])
    records: list[dict[str, Any]] = []
    i = 2
    while i < len(payload):
        if len(payload) - i < 5:
            raise _Incomplete(f"history record at byte {i} needs a 4-byte age and a type, has {len(payload) - i} bytes")
        record: dict[str, Any] = {"seq": (seq + len(records)) % 0x10000, "seconds_ago": _u(payload[i : i + 4])}
        fields, i = _item(payload, i + 4)
        records.append({**record, **fields})
    return {"history": records}


_STATUS = {0: "OK", 1: "bad setting", 2: "bad payload length", 3: "value not accepted", 4: "unknown command"}


def _settings(payload: bytes) -> dict[str, Any]:
    data: dict[str, Any] = {}
    i = 0
    while i < len(payload):
        kind = payload[i]
        if kind == 0x02 and len(payload) - i >= 6:
            data.setdefault("settings", []).append({"id": payload[i + 1], "value": _u(payload[i + 2 : i + 6])})
            i += 6
        elif kind == 0x03 and len(payload) - i >= 2:
            data["setting_status"] = _STATUS.get(payload[i + 1], f"unknown {payload[i + 1]}")
            i += 2
        else:
            raise _Incomplete(f"settings item 0x{kind:02x} at byte {i} is unknown or cut off")
    return data


_PORTS: dict[int, tuple[int, Callable[[bytes], dict[str, Any]]]] = {1: (2, _reports), 2: (2, _history),
                                                                    11: (1, _settings)}


def decode(payload: bytes, fport: int | None) -> DecodeResult:
    """Reports on fPort 1, history on fPort 2, settings answers on fPort 11."""
    port = _PORTS.get(fport) if fport is not None else None
    if port is None:
        return DecodeResult(errors=[f"unsupported fPort {fport}: Strips report on 1, history on 2, settings on 11"])
    minimum, read = port
    if len(payload) < minimum:
        return DecodeResult(errors=[f"fPort {fport} frame needs {minimum} bytes, has {len(payload)}"])
    try:
        return DecodeResult(data=read(payload))
    except _Incomplete as exc:
        return DecodeResult(errors=[str(exc)])


_NORMALIZED = {
    "battery": ("battery", 1),
    "temperature": ("temperature", 1),
    "humidity": ("humidity", 1),
    "lux": ("illuminance", 1),
    "door_open": ("door_open", 1),
    "door_count": ("door_open_count", 1),
    "flood_alarm": ("leak", 1),
    "presence": ("occupancy", 1),
}


def normalize(data: dict[str, Any]) -> list[Measurement]:
    """Current reports only; the door state is inverted to the vocabulary's door_open."""
    view = dict(data)
    if isinstance(data.get("door_closed"), bool):
        view["door_open"] = not data["door_closed"]
    return measurements_from(view, _NORMALIZED)


EXAMPLES = (
    Example(
        "Comfort: battery, temperature, temperature alarm, flood, user switch (TTN vendor sample)",
        "ffff0150 0200ea 0300 0d00 0e00 1000".replace(" ", ""),
        1,
        data={"history_seq": 65535, "prev_history_seq": 65535, "battery": 80, "temperature": 23.4,
              "temperature_alarm_high": False, "temperature_alarm_low": False, "flood": 0, "flood_alarm": False,
              "user_switch_alarm": False},
        measurements=(("battery", 80), ("temperature", 23.4), ("leak", 0)),
    ),
    Example(
        "Presence report (Sensative README sample)",
        "ffff1201",
        1,
        data={"history_seq": 65535, "prev_history_seq": 65535, "presence": True},
        measurements=(("occupancy", 1),),
    ),
    Example(
        "Comfort: combined humidity + temperature stored in history, lux",
        "0005 d06400e1 070190".replace(" ", ""),
        1,
        data={"history_seq": 5, "prev_history_seq": 4, "humidity": 50.0, "temperature": 22.5, "lux": 400},
        measurements=(("humidity", 50.0), ("temperature", 22.5), ("illuminance", 400)),
    ),
    Example(
        "Guard: door closed + negative temperature, door count",
        "0010 5201ff9c 110007".replace(" ", ""),
        1,
        data={"history_seq": 16, "prev_history_seq": 16, "door_closed": True, "temperature": -10.0, "door_count": 7},
        measurements=(("door_open", 0), ("temperature", -10.0), ("door_open_count", 7)),
    ),
    Example(
        "Drip: flood alarm stored in history, wetness",
        "0001 8e01 0d4b".replace(" ", ""),
        1,
        data={"history_seq": 1, "prev_history_seq": 0, "flood_alarm": True, "flood": 75},
        measurements=(("leak", 1),),
    ),
    Example(
        "check-in after a button press",
        "0000 6e0100000a12345678".replace(" ", ""),
        1,
        # Sensative's reference decoder: uint32 software version, then four one-byte counters
        data={"history_seq": 0, "prev_history_seq": 0, "firmware_version": "0100000a", "start_up_count": 0x12,
              "watchdog_count": 0x34, "stack_tx_fail_reboot_count": 0x56, "bad_conditions_count": 0x78},
    ),
    Example(
        "history: two records (fPort 2)",
        "0064 0000003c0200e6 00000e100900".replace(" ", ""),
        2,
        data={"history": [{"seq": 100, "seconds_ago": 60, "temperature": 23.0},
                          {"seq": 101, "seconds_ago": 3600, "door_closed": False}]},
    ),
    Example("setting value and status (fPort 11)", "020200000e10 0300".replace(" ", ""), 11,
            data={"settings": [{"id": 2, "value": 3600}], "setting_status": "OK"}),
    Example("one byte on fPort 1", "ff", 1, errors=("needs 2 bytes, has 1",)),
    Example("unknown report type", "00007f00", 1, errors=("unknown report type 127 at byte 2",)),
    Example("cut-off temperature", "00000200", 1, errors=("report type 2 at byte 2 needs 2 bytes, has 1",)),
    Example("cut-off history record", "00640000003c", 2, errors=("needs a 4-byte age and a type",)),
    Example("unknown settings item", "09", 11, errors=("settings item 0x09 at byte 0",)),
    Example("wrong fPort", "ffff1201", 5, errors=("unsupported fPort 5",)),
    Example("no fPort", "ffff1201", None, errors=("unsupported fPort None",)),
)
