"""The registry's JavaScript decoders, compiled once per version and called from the pipeline.

``sync`` runs on every registry reload: new or changed decoders are compiled (about half a
millisecond each), removed ones dropped, and a decoder that no longer compiles is kept as an
error, so its devices' messages are still delivered raw with ``decoder.status = "error"``.
A decoder shared by every organization runs in a separate context per organization
(``isolation_key``), so no tenant's call can leave state another tenant's call would see.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from decoders.contract import DecodeResult, Measurement
from decoders.js import Dialect, JsCodec, JsCompileError, Limits
from decoders.js.trial import measurements_of
from registry.records import Device, JsDecoderRecord

log = structlog.get_logger("iotd.js")


@dataclass(slots=True)
class CompiledDecoder:
    record: JsDecoderRecord
    codec: JsCodec | None
    error: str | None = None

    @property
    def version(self) -> str:
        return f"js-{self.record.version}"

    def decode(self, device: Device, payload: bytes, fport: int | None, event: Mapping[str, Any] | None,
               received_at: float | None = None) -> tuple[DecodeResult, list[Measurement]]:
        if self.codec is None:
            return DecodeResult(errors=[f"the decoder does not compile: {self.error}"]), []
        key = device.organization_id if self.record.organization_id is None else None
        record = device_record(device) if self.codec.dialect is Dialect.OS2IOT else None  # only OS2iot reads it
        result = self.codec.decode(payload, fport, variables=device.tags, event=event, device=record,
                                   recv_time=datetime.fromtimestamp(received_at, UTC) if received_at else None,
                                   isolation_key=key)
        if not result.ok:
            return result, []
        measurements = measurements_of(self.codec, result.data, result.warnings, key)
        return result, measurements


def device_record(device: Device) -> dict[str, Any]:
    """What a decoder may know about its device (OS2iot decoders read it as their metadata)."""
    out: dict[str, Any] = {"id": device.id, "name": device.name, "type": device.kind, "dev_eui": device.dev_eui,
                           "tags": dict(device.tags)}
    if device.lat is not None and device.lon is not None:
        out["location"] = {"lat": device.lat, "lon": device.lon}
    return out


def compile_record(record: JsDecoderRecord) -> CompiledDecoder:
    try:
        codec = JsCodec(record.source, dialect=record.dialect, limits=Limits(time_ms=record.timeout_ms))
    except (JsCompileError, ValueError) as exc:
        return CompiledDecoder(record, None, str(exc))
    return CompiledDecoder(record, codec)


class JsDecoders:
    def __init__(self) -> None:
        self._compiled: dict[str, CompiledDecoder] = {}

    def sync(self, records: Mapping[str, JsDecoderRecord]) -> None:
        fresh: dict[str, CompiledDecoder] = {}
        for decoder_id, record in records.items():
            known = self._compiled.get(decoder_id)
            if known is not None and known.record.version == record.version:
                fresh[decoder_id] = known
                continue
            compiled = compile_record(record)
            if compiled.error:
                log.error("JavaScript decoder does not compile; its messages go out raw", decoder=decoder_id,
                          error=compiled.error)
            fresh[decoder_id] = compiled
        self._compiled = fresh

    def compiled(self) -> dict[str, CompiledDecoder]:
        return dict(self._compiled)

    def get(self, decoder_id: str, organization_id: str) -> CompiledDecoder | None:
        found = self._compiled.get(decoder_id)
        if found is None or not found.record.usable_by(organization_id):
            return None
        return found
