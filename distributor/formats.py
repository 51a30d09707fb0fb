"""Output formats a consumer can choose: ``native`` (iotd.message/1), ``senml`` (RFC 8428), ``raw``.

Pure functions from the message dict the pipeline built to bytes, plus how a batch of
rendered messages is joined into one body.

SenML and the device's name: the base name ``bn`` stays the device's URN (``urn:dev:deveui:…:``),
because RFC 8428 makes ``bn`` + ``n`` the globally unique name of each reading, and a human name
is neither unique nor stable. The name travels in an extension field, ``device_name``, on the
record that carries ``bn`` (the first record of each device's pack): RFC 8428 (section 12.3.1 for
JSON) lets a pack carry fields a receiver does not know, which it must ignore unless the label
ends in ``_``; ``device_name`` does not, so plain SenML receivers keep working and ignore it.
Like ``bn`` it describes the records after it up to the next ``bn``, but it is not a base field,
so a receiver that resolves records (section 4.6) does not copy it: read it beside ``bn``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from decoders.contract import NUMBER

FORMATS = ("native", "senml", "raw")


def _epoch(ts: str | None) -> float | None:
    if not ts:
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def senml_pack(message: dict[str, Any]) -> list[dict[str, Any]]:
    """An RFC 8428 pack: base name ``urn:dev:<dev_eui or id>:``, base time the measurement time, and the
    extension field ``device_name`` beside ``bn`` (see the module docstring)."""
    device = message["device"]
    network = message["network"]
    ident = network.get("dev_eui") or device["id"]
    base_name = f"urn:dev:{'deveui' if network.get('dev_eui') else 'id'}:{ident}:"
    bt = _epoch(message.get("measured_at")) or _epoch(message.get("received_at"))
    records: list[dict[str, Any]] = []
    for m in message["measurements"]:
        rec: dict[str, Any] = {"n": m["name"], "u": m["unit"]}
        value = m["value"]
        if isinstance(value, bool):
            rec["vb"] = value
        elif isinstance(value, NUMBER):
            rec["v"] = value
        else:
            rec["vs"] = str(value)
        records.append(rec)
    if not records:  # still say the device spoke: the raw payload as a data value
        records.append({"n": "payload", "vd": message["payload"]["raw"]})
    first = records[0]
    first["bn"] = base_name
    if bt is not None:
        first["bt"] = bt
    name = device.get("name")
    if name:
        first["device_name"] = name
    return records


def render(fmt: str, message: dict[str, Any], raw_event: dict[str, Any] | None) -> bytes:
    """One message as the consumer's format wants it; ``raw`` falls back to native when there is no event."""
    if fmt == "senml":
        return orjson.dumps(senml_pack(message))
    if fmt == "raw" and raw_event is not None:
        return orjson.dumps(raw_event)
    return orjson.dumps(message)


def join_batch(fmt: str, bodies: list[bytes]) -> bytes:
    """Many rendered messages in one body: a JSON array (for SenML, one pack of all records)."""
    if fmt == "senml":
        return b"[" + b",".join(b[1:-1] for b in bodies if len(b) > 2) + b"]"
    return b"[" + b",".join(bodies) + b"]"
