"""The registry's JavaScript decoders on the distributor's side: records, and the request for one uplink.

Nothing is compiled here. ``sync`` runs on every registry reload and only swaps a dictionary of
records (id, owner, dialect, source, time limit, version); the workers of ``distributor.js_pool``
load a codec the first time an uplink needs it, so neither a reload nor a codec whose top level
spins can hold the event loop. A codec that does not compile answers each of its uplinks with
"the decoder does not compile: ..." (from the worker), and they go out raw.

A decoder shared by every organization runs in a separate context per organization (the isolation
key), so no tenant's call can leave anything another tenant's call would see.

OS2iot decoders read the device's last battery level and link margin from ``lorawanSettings``
(``decoders.js.os2iot``); :class:`DeviceStatuses` keeps them in memory for the devices such a decoder
serves, from ChirpStack's status events and, at start-up, from ``device_state``, so the uplink path
never waits on the database for them.
"""

from __future__ import annotations

import base64
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from decoders.contract import DecodeResult, Measurement
from decoders.js.dialects import Dialect
from registry.records import Device, JsDecoderRecord

MAX_STATUSES = 200_000
"""Devices whose last status is kept; beyond, the longest-known entry makes room (it is refreshed by the
device's next status report)."""


class DeviceStatuses:
    """The last battery level (ChirpStack's percentage) and link margin (dB) reported per device id."""

    def __init__(self, limit: int = MAX_STATUSES) -> None:
        self._limit = limit
        self._known: OrderedDict[str, tuple[float | None, int | None]] = OrderedDict()   # least recent first

    def __len__(self) -> int:
        return len(self._known)

    def note(self, device_id: str, battery_level: float | None, margin: int | None) -> None:
        """Merge a report: an unavailable value (None) keeps the last known one, as ``device_state`` does."""
        if battery_level is None and margin is None:
            return
        old = self._known.get(device_id)
        if old is None and len(self._known) >= self._limit:
            self._known.popitem(last=False)   # the device heard from least recently; O(1) (not a dict's first key)
        elif old is not None:
            self._known.move_to_end(device_id)
        last_battery, last_margin = old or (None, None)
        self._known[device_id] = (last_battery if battery_level is None else battery_level,
                                  last_margin if margin is None else margin)

    def get(self, device_id: str) -> dict[str, Any]:
        """``{battery_level?, margin?}``: what is known of the device, nothing when nothing is."""
        battery, margin = self._known.get(device_id, (None, None))
        out: dict[str, Any] = {}
        if battery is not None:
            out["battery_level"] = battery
        if margin is not None:
            out["margin"] = margin
        return out

    async def load(self, conn: asyncpg.Connection | asyncpg.Pool) -> int:
        """The known status of every device an OS2iot decoder serves, from ``device_state`` (at start-up)."""
        rows = await conn.fetch(
            "SELECT s.device_id::text AS device_id, s.battery_level, s.margin FROM device_state s"
            " JOIN devices d ON d.id = s.device_id JOIN js_decoders j ON j.id = d.decoder"
            " WHERE j.dialect = 'os2iot' AND (s.battery_level IS NOT NULL OR s.margin IS NOT NULL)"
            " ORDER BY s.updated_at LIMIT $1", self._limit)
        for row in rows:
            self.note(row["device_id"], row["battery_level"], row["margin"])
        return len(rows)


class JsDecoders:
    """The JavaScript decoders of the current registry snapshot, by id, and the device statuses OS2iot
    decoders read."""

    def __init__(self) -> None:
        self._records: dict[str, JsDecoderRecord] = {}
        self.statuses = DeviceStatuses()

    def sync(self, records: Mapping[str, JsDecoderRecord]) -> None:
        self._records = dict(records)

    def records(self) -> dict[str, JsDecoderRecord]:
        return dict(self._records)

    def get(self, decoder_id: str, organization_id: str) -> JsDecoderRecord | None:
        found = self._records.get(decoder_id)
        if found is None or not found.usable_by(organization_id):
            return None
        return found

    def note_status(self, device: Device, state: Mapping[str, Any]) -> None:
        """A device event's state (``battery_level``, ``margin``), kept when an OS2iot decoder serves the device."""
        record = self.get(device.decoder, device.organization_id) if device.decoder else None
        if record is not None and record.dialect == Dialect.OS2IOT:
            self.statuses.note(device.id, state.get("battery_level"), state.get("margin"))

    def status(self, device: Device) -> dict[str, Any]:
        """What is known of the device's battery and margin (for :func:`decode_request`)."""
        return self.statuses.get(device.id)


def isolation_key(record: JsDecoderRecord, device: Device) -> str | None:
    """A shared decoder gets a context per organization; an organization's own decoder needs none."""
    return device.organization_id if record.organization_id is None else None


def decode_request(record: JsDecoderRecord, device: Device, key: str | None, payload: bytes, fport: int | None,
                   event: Mapping[str, Any] | None, received_at: float | None,
                   status: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The worker request for one uplink (``decoders.js.wire``); the source goes along when a worker needs it.
    ``status``: the device's last battery level and margin (:meth:`JsDecoders.status`), for OS2iot decoders."""
    body: dict[str, Any] = {"op": "decode", "c": [record.id, record.version, key],
                            "p": base64.b64encode(payload).decode(), "f": fport, "v": device.tags}
    if received_at:
        body["t"] = int(received_at * 1000)
    if record.dialect == Dialect.OS2IOT:  # the one dialect that reads the event and the device record
        body["e"] = event
        body["d"] = device_record(device, status)
    return body


def decode_outcome(answer: Mapping[str, Any]) -> tuple[DecodeResult, list[Measurement]]:
    """A worker's answer (or the pool's stand-in for one) as the pipeline's result and measurements."""
    result = DecodeResult(data=answer.get("d") or {}, warnings=list(answer.get("w") or ()),
                          errors=list(answer.get("e") or ()))
    if not result.ok:
        return result, []
    return result, [Measurement(name, unit, value) for name, unit, value in answer.get("m") or ()]


def device_record(device: Device, status: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a decoder may know about its device (OS2iot decoders read it as their metadata; ``os2iot_metadata``
    turns ``battery_level``/``margin`` into ``lorawanSettings.deviceStatusBattery``/``deviceStatusMargin``)."""
    out: dict[str, Any] = {"id": device.id, "name": device.name, "type": device.kind, "dev_eui": device.dev_eui,
                           "tags": dict(device.tags)}
    if device.lat is not None and device.lon is not None:
        out["location"] = {"lat": device.lat, "lon": device.lon}
    for key in ("battery_level", "margin"):
        if status and status.get(key) is not None:
            out[key] = status[key]
    return out


MAX_SUSPENSION_DOUBLINGS = 6


@dataclass(slots=True)
class _Health:
    streak: int = 0           # timeouts in a row
    level: int = 0            # suspensions in a row (the doubling)
    until: float = 0.0        # monotonic time the suspension ends
    until_wall: float = 0.0
    probation: bool = False   # suspended before: the next timeout suspends again


class Suspensions:
    """Decoders suspended per organization for timing out: after ``after`` timeouts in a row for ``base_s``;
    the first timeout after a suspension suspends again for twice as long (up to 64 times); an answer in
    time clears it all. Pure: the caller gives the clocks (``now`` monotonic, ``wall`` epoch seconds)."""

    def __init__(self, after: int, base_s: float) -> None:
        self.after = after
        self.base_s = base_s
        self._health: dict[tuple[str, str], _Health] = {}

    def reason(self, decoder_id: str, organization: str, now: float) -> str | None:
        """Why an uplink cannot be decoded now, or None when the decoder may run."""
        h = self._health.get((decoder_id, organization))
        if h is None or h.until <= now:
            return None
        at = datetime.fromtimestamp(h.until_wall, UTC).isoformat(timespec="seconds")
        return f"decoder suspended after {h.streak} timeouts in a row; retrying at {at}"

    def timed_out(self, decoder_id: str, organization: str, now: float, wall: float) -> tuple[float, int] | None:
        """Count a timeout; (seconds, timeouts in a row) when it suspends the decoder now."""
        h = self._health.setdefault((decoder_id, organization), _Health())
        h.streak += 1
        if h.until > now or not (h.probation or h.streak >= self.after):
            return None
        seconds = self.base_s * 2 ** min(h.level, MAX_SUSPENSION_DOUBLINGS)
        h.level += 1
        h.probation = True
        h.until, h.until_wall = now + seconds, wall + seconds
        return seconds, h.streak

    def answered(self, decoder_id: str, organization: str) -> None:
        """An answer in time (even an error): the decoder is healthy again for that organization."""
        self._health.pop((decoder_id, organization), None)

    def active(self, now: float) -> set[str]:
        """Decoder ids suspended now, for some organization."""
        return {decoder for (decoder, _), h in self._health.items() if h.until > now}
