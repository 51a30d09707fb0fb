"""Try a JavaScript codec once on one payload: the API's and the CLI's test, same sandbox and limits."""

from __future__ import annotations

from typing import Any

from decoders.contract import Measurement, preset_measurements
from decoders.js.codec import JsCodec
from decoders.js.engine import JsCompileError
from decoders.js.limits import Limits
from decoders.ttn_normalized import measurements_from_normalized


def measurements_of(codec: JsCodec, data: dict[str, Any], warnings: list[str],
                    isolation_key: str | None = None) -> list[Measurement]:
    """Vocabulary-named fields of ``data``, plus TTN's normalized payload when the codec has one."""
    measurements = preset_measurements(data)
    if codec.has_normalize:
        normalized = codec.normalize(data, isolation_key=isolation_key)
        if normalized.ok:
            have = {m.name for m in measurements}
            measurements += [m for m in measurements_from_normalized(normalized.data) if m.name not in have]
        else:
            warnings.extend(f"normalizeUplink: {e}" for e in normalized.errors)
    return measurements


def try_codec(source: str, dialect: str | None, timeout_ms: int, payload: bytes, fport: int | None,
             variables: dict[str, str]) -> dict[str, Any]:
    """Compile and decode once, in the calling thread: ``{data, measurements, warnings, errors}``."""
    try:
        codec = JsCodec(source, dialect=dialect, limits=Limits(time_ms=timeout_ms))
    except (JsCompileError, ValueError) as exc:
        return {"data": {}, "measurements": [], "warnings": [], "errors": [f"does not compile: {exc}"]}
    result = codec.decode(payload, fport, variables=variables)
    measurements = measurements_of(codec, result.data, result.warnings) if result.ok else []
    return {"data": result.data, "measurements": [m.as_dict() for m in measurements], "warnings": result.warnings,
            "errors": result.errors}
