"""What a codec call gave back, and how each dialect's answer becomes a result the pipeline can use.

The harness answers with a JSON envelope ``{r: value, e: error, l: console lines}``; ``r`` is absent
when the function returned ``undefined``. Shapes per dialect:

* ``decodeUplink``/``decodeDownlink``: an object with ``data`` (an object), optional ``warnings`` and
  ``errors`` (lists of strings); non-empty ``errors`` means failure, even when ``data`` came too.
* ``Decode`` (ChirpStack v3) and ``Decoder`` (TTN v2, which The Things Stack wraps as ``{data: ...}``): the
  data object itself.
* ``decode`` (OS2iot): an object (an NGSI-LD entity, a flat object, the event with ``data`` replaced)
  becomes ``data``; an array (a list of entities) becomes ``{"items": [...]}``; ``undefined``, ``null``
  and ``false`` (what decoders return for frames they do not handle) are errors, not silent drops.

Every failure is a result with ``errors``; nothing here raises.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import orjson

from decoders.contract import NUMBER, DecodeResult


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """The raw answer of one call: the JSON value returned (if any), or the error, and console lines."""

    value: Any = None
    returned: bool = False
    error: str | None = None
    logs: tuple[str, ...] = ()
    normalized: CallOutcome | None = None  # normalizeUplink's answer, when the call asked for it and it ran

    @classmethod
    def failed(cls, error: str) -> CallOutcome:
        return cls(error=error)


@dataclass(slots=True)
class NormalizeResult:
    """``normalizeUplink``'s answer: always a list of measurement objects (TTN's normalized payload)."""

    data: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(slots=True)
class EncodeResult:
    """An encoded downlink: the FRMPayload and the fPort the codec chose (None: the caller's choice)."""

    payload: bytes = b""
    fport: int | None = None
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _without_lone_surrogates(value: Any) -> Any:
    """JavaScript strings may hold lone surrogates (``'\\ud800'``), which are not Unicode text: each becomes
    U+FFFD, so one odd string does not cost the message all its other readings."""
    if isinstance(value, str):
        return "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in value) if any(
            0xD800 <= ord(ch) <= 0xDFFF for ch in value) else value
    if isinstance(value, dict):
        return {_without_lone_surrogates(k): _without_lone_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_lone_surrogates(v) for v in value]
    return value


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        if "\\u" not in text:
            raise
    return _without_lone_surrogates(json.loads(text))   # the stdlib takes lone surrogate escapes; rare, slower


def parse_envelope(text: str) -> CallOutcome:
    """The harness's JSON answer as a :class:`CallOutcome`."""
    try:
        env = _loads(text)
    except (orjson.JSONDecodeError, ValueError) as exc:
        return CallOutcome.failed(f"the result is not valid JSON text: {exc}")
    if not isinstance(env, dict):
        return CallOutcome.failed("the harness answered with something other than an object")
    logs = tuple(str(line) for line in env.get("l") or ())
    error = env.get("e")
    if error is not None:
        return CallOutcome(error=str(error), logs=logs)
    normalized = None
    if "n" in env or "ne" in env:
        failed = env.get("ne")
        normalized = CallOutcome(value=env.get("n"), returned="n" in env, error=None if failed is None else str(failed))
    return CallOutcome(value=env.get("r"), returned="r" in env, logs=logs, normalized=normalized)


def shape_of(value: Any, returned: bool = True) -> str:
    """A few words for a JSON value's kind, for error messages."""
    if not returned:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, NUMBER):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def strings(value: Any) -> list[str]:
    """A codec's ``errors``/``warnings`` as a list of strings, whatever it put there."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [item if isinstance(item, str) else orjson.dumps(item).decode() for item in items]


def _console(outcome: CallOutcome) -> list[str]:
    return [f"console: {line}" for line in outcome.logs]


def decode_result(function: str, outcome: CallOutcome) -> DecodeResult:
    """Map any dialect's uplink (or downlink) decode answer to a :class:`DecodeResult`."""
    console = _console(outcome)
    if outcome.error is not None:
        return DecodeResult(warnings=console, errors=[outcome.error])
    value = outcome.value
    if function == "decode":
        return _os2iot_result(value, outcome.returned, console)
    if function in ("Decode", "Decoder"):
        if isinstance(value, dict):
            return DecodeResult(data=value, warnings=console)
        return DecodeResult(
            warnings=console, errors=[f"{function}() returned {shape_of(value, outcome.returned)}, not an object"]
        )
    if not isinstance(value, dict):
        return DecodeResult(
            warnings=console, errors=[f"{function}() returned {shape_of(value, outcome.returned)}, not an object"]
        )
    errors, warnings = strings(value.get("errors")), strings(value.get("warnings")) + console
    data = value.get("data")
    if errors:
        return DecodeResult(data=data if isinstance(data, dict) else {}, warnings=warnings, errors=errors)
    if "data" not in value:
        return DecodeResult(warnings=warnings, errors=[f"{function}() returned neither data nor errors"])
    if not isinstance(data, dict):
        return DecodeResult(
            warnings=warnings, errors=[f"{function}() returned data that is {shape_of(data)}, not an object"]
        )
    return DecodeResult(data=data, warnings=warnings)


def _os2iot_result(value: Any, returned: bool, console: list[str]) -> DecodeResult:
    if isinstance(value, dict):
        return DecodeResult(data=value, warnings=console)
    if isinstance(value, list):
        return DecodeResult(data={"items": value}, warnings=console)
    if not returned or value is None or value is False:
        return DecodeResult(
            warnings=console, errors=[f"decode() returned {shape_of(value, returned)}: the frame was not decoded"]
        )
    return DecodeResult(warnings=console, errors=[f"decode() returned {shape_of(value)}, not an object"])


def normalize_result(outcome: CallOutcome) -> NormalizeResult:
    """Map ``normalizeUplink``'s answer (``data`` one object or a list of them) to a list."""
    console = _console(outcome)
    if outcome.error is not None:
        return NormalizeResult(warnings=console, errors=[outcome.error])
    value = outcome.value
    if not isinstance(value, dict):
        return NormalizeResult(
            warnings=console, errors=[f"normalizeUplink() returned {shape_of(value, outcome.returned)}"]
        )
    errors, warnings = strings(value.get("errors")), strings(value.get("warnings")) + console
    if errors:
        return NormalizeResult(warnings=warnings, errors=errors)
    data = value.get("data")
    items = [data] if isinstance(data, dict) else data
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        return NormalizeResult(
            warnings=warnings, errors=["normalizeUplink() data is neither an object nor a list of objects"]
        )
    return NormalizeResult(data=items, warnings=warnings)


def encode_result(function: str, outcome: CallOutcome, fport: int | None) -> EncodeResult:
    """Map ``encodeDownlink``'s ``{bytes, fPort?, errors?}`` or the byte array of ChirpStack v3's ``Encode`` or
    TTN v2's ``Encoder`` to bytes."""
    console = _console(outcome)
    if outcome.error is not None:
        return EncodeResult(warnings=console, errors=[outcome.error])
    value = outcome.value
    warnings = console
    if function in ("Encode", "Encoder"):  # the bytes themselves (ChirpStack v3, TTN v2)
        raw = value
    elif isinstance(value, dict):
        errors, warnings = strings(value.get("errors")), strings(value.get("warnings")) + console
        if errors:
            return EncodeResult(warnings=warnings, errors=errors)
        raw = value.get("bytes")
        chosen = value.get("fPort", fport)
        if chosen is not None and (not isinstance(chosen, int) or isinstance(chosen, bool) or not 0 < chosen < 256):
            return EncodeResult(warnings=warnings, errors=[f"{function}() returned fPort {chosen!r}, not 1-255"])
        fport = chosen
    else:
        return EncodeResult(warnings=warnings, errors=[f"{function}() returned {shape_of(value, outcome.returned)}"])
    if not isinstance(raw, list) or not all(
        isinstance(b, int) and not isinstance(b, bool) and 0 <= b < 256 for b in raw
    ):
        return EncodeResult(
            warnings=warnings, errors=[f"{function}() did not return bytes as a list of integers 0-255"]
        )
    return EncodeResult(payload=bytes(raw), fport=fport, warnings=warnings)
