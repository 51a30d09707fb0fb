"""Try a JavaScript codec: once on one payload, or on its examples. The same sandbox and limits serve the
API's trials (in a worker process, ``decoders.js.worker``) and the CLI (in its own process)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from decoders.contract import DecodeResult, Measurement, preset_measurements
from decoders.js.codec import JsCodec
from decoders.js.dialects import Dialect
from decoders.js.engine import JsCompileError
from decoders.js.examples import CodecExample, run_examples
from decoders.js.limits import Limits
from decoders.js.os2iot import SAMPLE_DEVICE, sample_uplink_event
from decoders.js.results import NormalizeResult
from decoders.ttn_normalized import measurements_from_normalized


def measurements_of(codec: JsCodec, data: dict[str, Any], warnings: list[str],
                    isolation_key: str | None = None) -> list[Measurement]:
    """Vocabulary-named fields of ``data``, plus TTN's normalized payload when the codec has one (a second
    call; :func:`decode_measured` does both in one)."""
    normalized = codec.normalize(data, isolation_key=isolation_key) if codec.has_normalize else None
    return measured(data, warnings, normalized)


def measured(data: dict[str, Any], warnings: list[str], normalized: NormalizeResult | None) -> list[Measurement]:
    """Vocabulary-named fields of ``data``, plus those of TTN's normalized payload (its errors become warnings)."""
    measurements = preset_measurements(data)
    if normalized is not None:
        if normalized.ok:
            have = {m.name for m in measurements}
            measurements += [m for m in measurements_from_normalized(normalized.data) if m.name not in have]
        else:
            warnings.extend(f"normalizeUplink: {e}" for e in normalized.errors)
    return measurements


def decode_measured(codec: JsCodec, payload: bytes, fport: int | None, **context: Any
                    ) -> tuple[DecodeResult, list[Measurement]]:
    """Decode and measure one uplink with one call into the codec (``context``: see ``JsCodec.decode``)."""
    result, normalized = codec.decode_normalized(payload, fport, **context)
    if not result.ok:
        return result, []
    return result, measured(result.data, result.warnings, normalized)


def try_codec(source: str, dialect: str | None, timeout_ms: int, payload: bytes, fport: int | None,
              variables: dict[str, str]) -> dict[str, Any]:
    """Compile and decode once, in the calling thread: ``{data, measurements, warnings, errors}``. An OS2iot
    decoder gets a sample ChirpStack event and LoRaWAN device (``decoders.js.os2iot``), there being none."""
    try:
        codec = JsCodec(source, dialect=dialect, limits=Limits(time_ms=timeout_ms))
    except (JsCompileError, ValueError) as exc:
        return {"data": {}, "measurements": [], "warnings": [], "errors": [f"does not compile: {exc}"]}
    context: dict[str, Any] = {"variables": variables}
    if codec.dialect is Dialect.OS2IOT:  # it reads the event and the device record: give plausible ones
        moment = datetime.now(UTC)
        context.update(event=sample_uplink_event(payload, fport, moment), device=SAMPLE_DEVICE, recv_time=moment)
    result, measurements = decode_measured(codec, payload, fport, **context)
    return {"data": result.data, "measurements": [m.as_dict() for m in measurements], "warnings": result.warnings,
            "errors": result.errors}


def preview_codec(source: str, dialect: str | None, timeout_ms: int, uplinks: Sequence[tuple[bytes, int | None]]
                  ) -> dict[str, Any]:
    """Compile once and decode each stored uplink (each call under ``timeout_ms``): ``{results: [{data,
    measurements, warnings, errors}, ...]}`` in the same order, or ``{error}`` when it does not compile."""
    try:
        codec = JsCodec(source, dialect=dialect, limits=Limits(time_ms=timeout_ms))
    except (JsCompileError, ValueError) as exc:
        return {"error": f"does not compile: {exc}"}
    results = []
    for payload, fport in uplinks:
        context: dict[str, Any] = {}
        if codec.dialect is Dialect.OS2IOT:   # the stored message has no ChirpStack event: a plausible one
            moment = datetime.now(UTC)
            context.update(event=sample_uplink_event(payload, fport, moment), device=SAMPLE_DEVICE, recv_time=moment)
        result, measurements = decode_measured(codec, payload, fport, **context)
        results.append({"data": result.data, "measurements": [m.as_dict() for m in measurements],
                        "warnings": result.warnings, "errors": result.errors})
    return {"results": results}


def parse_examples(raw: Sequence[Any]) -> list[CodecExample]:
    """TTN-style examples (``{description, routine?, input: {fPort, bytes}, output: {data | errors}}``);
    a ValueError names the first malformed one."""
    out = []
    for i, item in enumerate(raw):
        try:
            out.append(CodecExample.from_mapping(item, str(item.get("routine", "decodeUplink"))))
        except (ValueError, AttributeError) as exc:
            raise ValueError(f"example {i + 1}: {exc}") from None
    return out


def check_codec(source: str, dialect: str | None, timeout_ms: int, examples: Sequence[Any] = ()) -> dict[str, Any]:
    """Compile and run the examples: ``{dialect, passed, failures, warnings}`` (warnings: ``normalizedOutput``
    mismatches), or ``{error}`` when it does not compile (with the line) or an example is malformed."""
    try:
        parsed = parse_examples(examples)
    except ValueError as exc:
        return {"error": str(exc)}
    try:
        codec = JsCodec(source, dialect=dialect, limits=Limits(time_ms=timeout_ms))
    except JsCompileError as exc:
        return {"error": f"the decoder does not compile: {exc}"}
    except ValueError as exc:
        return {"error": str(exc)}
    outcomes = run_examples(codec, parsed)
    failures = [f"{o.example.description or 'example'}: {o.message}" for o in outcomes if not o.passed]
    warnings = [f"{o.example.description or 'example'}: {o.normalized_message}" for o in outcomes
                if o.normalized_message]
    return {"dialect": str(codec.dialect), "passed": sum(o.passed for o in outcomes), "failures": failures,
            "warnings": warnings}
