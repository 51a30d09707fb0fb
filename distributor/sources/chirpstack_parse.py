"""ChirpStack v4 integration events (JSON or protobuf marshaler) to ``ChirpStackEvent``; pure, no I/O.

Both marshalers give equal fields for the same event. The JSON mapping omits default values
(ChirpStack omits them inside ``rxInfo``/``txInfo``; other producers anywhere), so an absent
field of the event's own kind reads as its proto3 default (``snr`` 0.0, ``fCnt`` 0, log
``level`` "INFO"), exactly what the protobuf message reports. Fields of other kinds stay None.
The JSON path is hand-written over ``orjson`` because ``json_format.Parse`` costs ~20x more.
``tags`` and ``object`` are the very dicts inside ``raw`` (no copy on the hot path): read-only.

Everything here comes from outside and ends up in PostgreSQL (unknown devices, device events,
the latest message), so it is bounded at this edge: an event larger than ``MAX_EVENT_BYTES`` is
refused, ``devEui`` must be 16 hex digits, ``deduplicationId`` at most 100 characters, and the
names and ids ChirpStack gives (tenant, application, device, profile) and a log's description are
made storable and cut to a sane length (``registry.storable``).
"""

from __future__ import annotations

import binascii
import math
import struct
from typing import Any

import orjson
from chirpstack_api import integration
from google.protobuf import json_format
from google.protobuf.message import DecodeError

from distributor.sources.chirpstack_event import ChirpStackEvent, EventParseError, GatewayReception
from registry import storable

__all__ = ["parse", "parse_json", "parse_protobuf", "parse_topic"]

_PROTO_TYPES: dict[str, Any] = {
    "up": integration.UplinkEvent, "join": integration.JoinEvent, "status": integration.StatusEvent,
    "log": integration.LogEvent, "ack": integration.AckEvent, "txack": integration.TxAckEvent,
    "location": integration.LocationEvent,
}
if hasattr(integration, "IntegrationEvent"):  # removed in chirpstack-api 4.15 with the LoRa Cloud integration
    _PROTO_TYPES["integration"] = integration.IntegrationEvent
_NO_DEDUP_ID = frozenset({"log", "txack"})  # the only messages without deduplication_id
_F32 = struct.Struct("<f")
_URLSAFE = bytes.maketrans(b"-_", b"+/")
_HEX = frozenset("0123456789abcdef")
MAX_EVENT_BYTES = 1024 * 1024     # ChirpStack's own events are a few KiB; a frame is at most 242 bytes
MAX_DEDUP_ID = 100                # a UUID in ChirpStack; bounded because it becomes part of every message
MAX_TIME = 64                     # RFC 3339 with nanoseconds is 35 characters
NAME = storable.IDENTIFIER_TEXT


def _dev_eui(value: object) -> str:
    """The lowercase EUI-64; anything else is not a device ChirpStack could have sent."""
    if type(value) is not str or len(value) != 16:
        raise EventParseError(f"deviceInfo.devEui must be 16 hex digits, got {value!r:.40}")
    eui = value.lower()
    if not _HEX.issuperset(eui):
        raise EventParseError(f"deviceInfo.devEui must be 16 hex digits, got {value!r:.40}")
    return eui


def _dedup_id(value: str) -> str | None:
    if len(value) > MAX_DEDUP_ID:
        raise EventParseError(f"deduplicationId is longer than {MAX_DEDUP_ID} characters")
    return storable.text(value, MAX_DEDUP_ID) or None


def _time(value: str) -> str | None:
    return storable.text(value, MAX_TIME) if value else None


def parse_topic(topic: str) -> tuple[str, str, str] | None:
    """(application_id, dev_eui lowercase, event) of ``application/{id}/device/{eui}/event/{event}``."""
    parts = topic.split("/")
    if (len(parts) != 6 or parts[0] != "application" or parts[2] != "device" or parts[4] != "event"
            or not parts[1] or not parts[3] or not parts[5]):
        return None
    return parts[1], parts[3].lower(), parts[5]


def parse(event: str, body: bytes, content_type: str | None = None) -> ChirpStackEvent:
    """Pick the marshaler from the content type (HTTP integration), else sniff for a JSON object."""
    if len(body) > MAX_EVENT_BYTES:
        raise EventParseError(f"the event is larger than {MAX_EVENT_BYTES} bytes")
    if content_type:
        ct = content_type.lower()
        if "protobuf" in ct or "octet-stream" in ct:
            return parse_protobuf(event, body)
        if "json" in ct:
            return parse_json(event, body)
    # A protobuf event starts with a field tag (0x0a for field 1), never with '{' after whitespace.
    if body[:64].lstrip()[:1] == b"{":
        return parse_json(event, body)
    return parse_protobuf(event, body)


# --- JSON marshaler -------------------------------------------------------------------------------------------

def _str(obj: dict[str, Any], key: str) -> str:
    v = obj.get(key)
    if type(v) is str:
        return v
    if v is None:
        return ""
    raise EventParseError(f"{key} must be a string, got {v!r:.40}")


def _int(obj: dict[str, Any], key: str) -> int:
    v = obj.get(key)
    if type(v) is int:
        return v
    if v is None:
        return 0
    if type(v) is str:  # int64/uint64 are strings in the JSON mapping; accept any numeric string
        try:
            return int(v)
        except ValueError:
            pass
    elif type(v) is float and v.is_integer():
        return int(v)
    raise EventParseError(f"{key} must be an integer, got {v!r:.40}")


def _float(obj: dict[str, Any], key: str) -> float:
    v = obj.get(key)
    if type(v) is float or type(v) is int:
        return float(v)
    if v is None:
        return 0.0
    if type(v) is str:  # the JSON mapping allows "NaN", "Infinity" and numeric strings
        try:
            return float(v)
        except ValueError:
            pass
    raise EventParseError(f"{key} must be a number, got {v!r:.40}")


def _bool(obj: dict[str, Any], key: str) -> bool:
    v = obj.get(key)
    if v is True or v is False:
        return v
    if v is None:
        return False
    raise EventParseError(f"{key} must be true or false, got {v!r:.40}")


def _dict(obj: dict[str, Any], key: str) -> dict[str, Any] | None:
    v = obj.get(key)
    if v is None or type(v) is dict:
        return v
    raise EventParseError(f"{key} must be an object, got {v!r:.40}")


def _enum(obj: dict[str, Any], key: str, enum: Any) -> str:
    """Enum name; the JSON mapping also allows the number, absent means the zero value."""
    v = obj.get(key)
    if type(v) is str:
        return v
    if v is None or type(v) is int:
        return _enum_name(enum, v or 0)
    raise EventParseError(f"{key} must be an enum name, got {v!r:.40}")


def _enum_name(enum: Any, number: int) -> str:
    """The value's name; a value newer than our chirpstack-api stays a number."""
    return str(enum.Name(number)) if number in enum.values() else str(number)


def _b64(text: Any) -> bytes:
    if type(text) is not str:
        raise EventParseError(f"data must be a base64 string, got {text!r:.40}")
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except binascii.Error:
        pass
    try:  # the JSON mapping also accepts URL-safe base64 without padding
        return binascii.a2b_base64(text.encode().translate(_URLSAFE) + b"=" * (-len(text) % 4), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        raise EventParseError(f"data is not valid base64: {text!r:.40}") from None


def parse_json(event: str, body: bytes) -> ChirpStackEvent:
    """The hot path: one ``orjson.loads`` and dict lookups; unknown fields are ignored."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise EventParseError(f"not JSON: {exc}") from None
    if type(doc) is not dict:
        raise EventParseError(f"expected a JSON object, got {type(doc).__name__}")
    info = _dict(doc, "deviceInfo")
    if not info:
        raise EventParseError("deviceInfo missing")
    dev_eui = info.get("devEui")
    if dev_eui is None or dev_eui == "":
        raise EventParseError("deviceInfo.devEui missing")
    text = storable.text
    ev = ChirpStackEvent(
        event, _dev_eui(dev_eui), text(_str(info, "tenantId"), NAME), text(_str(info, "applicationId"), NAME),
        text(_str(info, "deviceName"), NAME), text(_str(info, "deviceProfileName"), NAME), _dict(info, "tags") or {},
        _time(_str(doc, "time")), dedup_id=_dedup_id(_str(doc, "deduplicationId")), raw=doc,
    )
    if event == "up":
        ev.f_cnt = _int(doc, "fCnt")
        ev.f_port = _int(doc, "fPort")
        data = doc.get("data")
        ev.data = b"" if data is None else _b64(data)
        ev.dr = _int(doc, "dr")
        tx = _dict(doc, "txInfo")
        ev.frequency = None if tx is None else _int(tx, "frequency")
        ev.confirmed = _bool(doc, "confirmed")
        ev.object = _dict(doc, "object")
        ev.dev_addr = _str(doc, "devAddr") or None
        rx_info = doc.get("rxInfo")
        if rx_info is not None:
            if type(rx_info) is not list:
                raise EventParseError(f"rxInfo must be a list, got {rx_info!r:.40}")
            for rx in rx_info:
                if type(rx) is not dict:
                    raise EventParseError(f"rxInfo entries must be objects, got {rx!r:.40}")
                ev.rx.append(GatewayReception(_str(rx, "gatewayId"), _int(rx, "rssi"), _float(rx, "snr")))
    elif event == "status":
        ev.margin = _int(doc, "margin")
        ev.external_power_source = _bool(doc, "externalPowerSource")
        ev.battery_level = None if _bool(doc, "batteryLevelUnavailable") else _float(doc, "batteryLevel")
    elif event == "log":
        ev.level = _enum(doc, "level", integration.LogLevel)
        ev.code = _enum(doc, "code", integration.LogCode)
        ev.description = storable.text(_str(doc, "description"), storable.ERROR_TEXT)
    elif event == "join":
        ev.dev_addr = _str(doc, "devAddr") or None
    return ev


# --- protobuf marshaler ---------------------------------------------------------------------------------------

def _f32(x: float) -> float:
    """Shortest decimal that is the same float32, as the JSON marshaler prints it (9.8, not 9.800000190734863)."""
    if x == 0.0 or not math.isfinite(x):
        return x
    for digits in range(6, 10):
        short = float(f"{x:.{digits}g}")
        if _F32.unpack(_F32.pack(short))[0] == x:
            return short
    return x


def parse_protobuf(event: str, body: bytes) -> ChirpStackEvent:
    """The binary message, by direct attribute access; ``raw`` (its JSON mapping) is built eagerly: ~90% of the cost."""
    cls = _PROTO_TYPES.get(event)
    if cls is None:
        raise EventParseError(f"no protobuf message for ChirpStack event {event!r}")
    msg = cls()
    try:
        msg.ParseFromString(body)
    except DecodeError as exc:
        raise EventParseError(f"not a protobuf {cls.__name__}: {exc}") from None
    info = msg.device_info
    if not info.dev_eui:
        raise EventParseError("deviceInfo.devEui missing")
    dev_eui = _dev_eui(info.dev_eui)
    try:
        raw = json_format.MessageToDict(msg)
        obj = json_format.MessageToDict(msg.object) if event == "up" and msg.HasField("object") else None
    except ValueError as exc:  # e.g. NaN inside a Struct has no JSON form
        raise EventParseError(f"{cls.__name__} has no JSON mapping: {exc}") from None
    text = storable.text
    ev = ChirpStackEvent(
        event, dev_eui, text(info.tenant_id, NAME), text(info.application_id, NAME), text(info.device_name, NAME),
        text(info.device_profile_name, NAME), dict(info.tags),
        msg.time.ToJsonString() if msg.HasField("time") else None,
        dedup_id=None if event in _NO_DEDUP_ID else _dedup_id(msg.deduplication_id), raw=raw,
    )
    if event == "up":
        ev.f_cnt = msg.f_cnt
        ev.f_port = msg.f_port
        ev.data = msg.data
        ev.dr = msg.dr
        ev.frequency = msg.tx_info.frequency if msg.HasField("tx_info") else None
        ev.confirmed = msg.confirmed
        ev.object = obj
        ev.dev_addr = msg.dev_addr or None
        ev.rx = [GatewayReception(rx.gateway_id, rx.rssi, _f32(rx.snr)) for rx in msg.rx_info]
    elif event == "status":
        ev.margin = msg.margin
        ev.external_power_source = msg.external_power_source
        ev.battery_level = None if msg.battery_level_unavailable else _f32(msg.battery_level)
    elif event == "log":
        ev.level = _enum_name(integration.LogLevel, msg.level)
        ev.code = _enum_name(integration.LogCode, msg.code)
        ev.description = storable.text(msg.description, storable.ERROR_TEXT)
    elif event == "join":
        ev.dev_addr = msg.dev_addr or None
    return ev
