"""Builds ``iotd.message/1`` dicts (pure). Ids are deterministic: the same source message, the same id."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

from decoders.contract import DecodeResult, Measurement
from distributor.model import SCHEMA_ID
from registry.records import Device


def message_id(dedup_key: str) -> str:
    """A UUID (version 8 layout) from SHA-256 of the source's dedup key."""
    h = hashlib.sha256(dedup_key.encode()).hexdigest()
    variant = "89ab"[int(h[16], 16) & 0x3]    # RFC 9562 variant bits 10xx
    return f"{h[0:8]}-{h[8:12]}-8{h[13:16]}-{variant}{h[17:20]}-{h[20:32]}"


_second: list[Any] = [None, ""]   # the last whole second formatted: most messages share it with the one before


def iso_utc(epoch: float) -> str:
    """RFC 3339 UTC with milliseconds, e.g. ``2026-11-22T10:00:00.123Z``."""
    whole = int(epoch)
    micros = round((epoch - whole) * 1e6)   # as datetime rounds a float timestamp, then milliseconds truncate
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    if whole != _second[0]:
        _second[0], _second[1] = whole, datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{_second[1]}.{micros // 1000:03d}Z"


def device_ref(device: Device) -> dict[str, Any]:
    """The message's ``device``: ids for machines, names for people (the names come with the cached record)."""
    ref: dict[str, Any] = {
        "id": device.id, "name": device.name,
        "organization": device.organization_id, "organization_name": device.organization_name,
        "application": device.application_id, "application_name": device.application_name,
        "type": device.decoder, "tags": device.tags,
    }
    if device.lat is not None and device.lon is not None:
        ref["location"] = {"lat": device.lat, "lon": device.lon}
    return ref


def build_message(
    *, msg_id: str, received_at: float, measured_at: str | None, device: Device, network: dict[str, Any],
    payload: bytes, decoder_version: str | None, result: DecodeResult | None, measurements: list[Measurement],
) -> dict[str, Any]:
    """The iotd.message/1 object; ``decoder_version`` is None when the device's decoder is not installed."""
    if decoder_version is None or result is None:
        decoder_info: dict[str, Any] = {"id": device.decoder, "version": None, "status": "none",
                                        "warnings": [], "errors": [] if device.decoder is None
                                        else [f"decoder {device.decoder!r} is not installed"]}
        if device.decoder is not None:
            decoder_info["status"] = "error"
    else:
        decoder_info = {"id": device.decoder, "version": decoder_version,
                        "status": "ok" if result.ok else "error",
                        "warnings": result.warnings, "errors": result.errors}
    return {
        "schema": SCHEMA_ID,
        "id": msg_id,
        "received_at": iso_utc(received_at),
        "measured_at": measured_at,
        "device": device_ref(device),
        "network": network,
        "payload": {"raw": base64.b64encode(payload).decode(),
                    "decoded": result.data if result is not None and (result.ok or result.data) else None},
        "measurements": [m.as_dict() for m in measurements],
        "decoder": decoder_info,
    }
