"""Turns a parsed ChirpStack event into pipeline work; shared by the MQTT source and the HTTP endpoint.

Three keys per uplink, each with one job (pure functions below):

* **De-duplication key** (``dedup_key``): ChirpStack's own ``deduplicationId`` (``chirpstack:<id>``), which
  already merges the gateways of one reception and is the same on every redelivery of the event. An
  event without one uses its message key. Remembered for ``IOTD_DEDUP_WINDOW_S`` once done.
* **Frame key** (``frame_key``): (dev_eui, fCnt, fPort, payload). The same frame arriving as
  another event (a second ChirpStack replica, with its own deduplicationId) within
  ``IOTD_DEDUP_FRAME_WINDOW_S`` is the same message; a frame with the same counter but another payload (a
  device that rejoined or reset its counter) is not. An identical frame after a counter reset within the
  window is indistinguishable from a copy and is dropped.
* **Message key** (``message_key``), from which the message id derives: the same on every instance and after
  a restart for the same frame, so consumers can de-duplicate copies that reach them through different
  instances: ``lorawan:<dev_eui>:<fCnt>:<fPort>:<payload hex>:<time bucket>``, where the bucket is the
  event's own ``time`` (UTC) in whole ``TIME_BUCKET_S`` (10 s) steps, so two genuinely different uplinks with
  an identical frame (a counter reset) still get different ids. Two copies whose ``time`` lie on either side
  of a bucket edge get two ids (ChirpStack stamps ``time`` from the gateways' GPS or clock, or its own
  clock: copies differ by milliseconds, so about one in a thousand such pairs). An event without a
  (readable) ``time`` uses ``chirpstack:<deduplicationId>`` instead (the source's own id: stable for
  redeliveries, not across replicas); without either, ``lorawan:<dev_eui>:<fCnt>:<fPort>:<payload hex>``.
  An absent fCnt reads as 0 (its protobuf default), as the parser does.

The payload is written out as hex (``payload_part``; a payload over 256 bytes, which no LoRaWAN frame is,
as ``sha256-<hex digest>``); the message id is the SHA-256 of the whole key (``envelope.message_id``), so the
frame is hashed once per message, with the id. Cost: ~2 µs per uplink for the three keys.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from typing import Any

from distributor.ack import Finalizer
from distributor.pipeline import Pipeline
from distributor.sources.chirpstack_event import ChirpStackEvent
from distributor.uplink import RawUplink


def uplink_network(ev: ChirpStackEvent) -> dict[str, Any]:
    network: dict[str, Any] = {"kind": "lorawan", "dev_eui": ev.dev_eui, "f_cnt": ev.f_cnt, "f_port": ev.f_port,
                               "dedup_id": ev.dedup_id,
                               "radio": [{"gateway": r.gateway, "rssi": r.rssi, "snr": r.snr} for r in ev.rx]}
    if ev.dr is not None:
        network["dr"] = ev.dr
    if ev.frequency:
        network["frequency"] = ev.frequency
    return network


TIME_BUCKET_S = 10
INLINE_PAYLOAD = 256      # bytes written out in keys as hex; a longer payload (not a LoRaWAN frame) by its SHA-256
_last_second: list[Any] = ["", None]   # the last whole UTC second read and its bucket: most uplinks share it


def payload_part(payload: bytes) -> str:
    """The payload as it appears in the frame and message keys: its hex (a LoRaWAN frame is at most 242 bytes),
    or ``sha256-<hex>`` past ``INLINE_PAYLOAD`` bytes, so a key stays bounded whatever an event carries."""
    if len(payload) <= INLINE_PAYLOAD:
        return payload.hex()
    return "sha256-" + hashlib.sha256(payload).hexdigest()


def time_bucket(time: str | None) -> int | None:
    """The event's ``time`` in whole ``TIME_BUCKET_S`` steps since the epoch (UTC when it names no zone);
    None when absent or not RFC 3339. A time in the same whole second as the one before, written the way
    ChirpStack writes it (``...:SS[.digits]Z``), is answered from that one without parsing."""
    if not time:
        return None
    second, rest = time[:19], time[19:]
    if second == _last_second[0] and _utc_fraction(rest):
        bucket: int | None = _last_second[1]
        return bucket
    try:
        when = datetime.fromisoformat(time)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        bucket = math.floor(when.timestamp()) // TIME_BUCKET_S
    except (ValueError, OverflowError, OSError):
        return None
    if _utc_fraction(rest):
        _last_second[0], _last_second[1] = second, bucket
    return bucket


def _utc_fraction(rest: str) -> bool:
    """``Z`` or ``.<1-9 digits>Z``: what follows the whole seconds in ChirpStack's RFC 3339 UTC times."""
    if rest == "Z":
        return True
    digits = rest[1:-1]
    return (rest[:1] == "." and rest[-1:] == "Z" and 0 < len(digits) <= 9 and digits.isascii()
            and digits.isdigit())


def frame_key(ev: ChirpStackEvent, payload: str | None = None) -> tuple[str, int, int, str]:
    """(dev_eui, fCnt, fPort, payload): the frame, whichever event brought it."""
    return ev.dev_eui, ev.f_cnt or 0, ev.f_port or 0, payload_part(ev.data) if payload is None else payload


def message_key(ev: ChirpStackEvent, payload: str | None = None) -> str:
    """What the message id of an uplink derives from: its frame and time bucket (see the module docstring)."""
    frame = (f"lorawan:{ev.dev_eui}:{ev.f_cnt or 0}:{ev.f_port or 0}:"
             f"{payload_part(ev.data) if payload is None else payload}")
    bucket = time_bucket(ev.time)
    if bucket is not None:
        return f"{frame}:{bucket}"
    if ev.dedup_id:
        return f"chirpstack:{ev.dedup_id}"
    return frame


def dedup_key(ev: ChirpStackEvent, payload: str | None = None) -> str:
    """ChirpStack's deduplicationId when present; otherwise the message key."""
    if ev.dedup_id:
        return f"chirpstack:{ev.dedup_id}"
    return message_key(ev, payload)


def device_state_of(ev: ChirpStackEvent) -> tuple[dict[str, Any], dict[str, Any]]:
    """(detail kept with the event, fields merged into the device state) for a non-uplink event."""
    if ev.event == "status":
        detail: dict[str, Any] = {"battery_level": ev.battery_level, "margin": ev.margin,
                  "external_power_source": ev.external_power_source}
        return detail, {"battery_level": ev.battery_level, "margin": ev.margin,
                        "external_power": ev.external_power_source}
    if ev.event == "join":
        from datetime import datetime

        joined = None
        if ev.time:
            try:
                joined = datetime.fromisoformat(ev.time.replace("Z", "+00:00"))
            except ValueError:
                joined = None
        return {"dev_addr": ev.dev_addr, "time": ev.time}, {"joined_at": joined, "dev_addr": ev.dev_addr}
    if ev.event == "log":
        detail = {"level": ev.level, "code": ev.code, "description": ev.description, "time": ev.time}
        return detail, {"last_log": detail}
    return {"time": ev.time}, {}


def submit(pipeline: Pipeline, ev: ChirpStackEvent, finalizer: Finalizer, source: str, received_at: float) -> None:
    if ev.event != "up":
        detail, state = device_state_of(ev)
        pipeline.device_event(ev.dev_eui, ev.event, detail, state, finalizer, ev.tenant_id or None,
                              ev.application_id or None)
        return
    payload = payload_part(ev.data)
    pipeline.handle(RawUplink(
        source=source, dedup_key=dedup_key(ev, payload), payload=ev.data, fport=ev.f_port, received_at=received_at,
        measured_at=ev.time, network=uplink_network(ev), finalizer=finalizer, dev_eui=ev.dev_eui,
        frame_key=frame_key(ev, payload), raw_event=ev.raw,
        unknown_detail={"tenant_id": ev.tenant_id, "application_id": ev.application_id,
                        "device_name": ev.device_name, "device_profile": ev.device_profile_name},
        tenant_id=ev.tenant_id or None, application_id=ev.application_id or None,
        id_key=message_key(ev, payload),
    ))
