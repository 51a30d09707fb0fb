"""Run a codec's own examples (TTN device repository, ChirpStack device profiles) and say what differs.

An example is ``{description, input, output}`` for one routine: ``decodeUplink`` and ``decodeDownlink``
take ``input: {fPort, bytes, recvTime?, variables?}``, ``encodeDownlink`` takes ``input: {data, ...}``;
``output`` is what the routine must return, optionally with ``normalizedOutput`` for ``normalizeUplink``.
The routine's answer is compared as JSON (what ``JSON.stringify`` gives: ``undefined`` dropped, dates
as strings) by deep equality, as the TTN repository's validator does with lodash ``isEqual``; empty
``errors``/``warnings`` lists count as absent on both sides (The Things Stack omits them). A boolean never
equals a number.

Numbers: integers compare exactly; any other pair within a relative :data:`REL_TOLERANCE` (or
:data:`ABS_TOLERANCE` near zero). TTN's validator (``bin/validate.js``) compares exactly, but its examples
were produced by V8 or goja, and QuickJS's ``Math`` functions (``pow``, ``log``, ``exp``) may differ from
theirs in the last bit: a 1e-14 difference is the engine, not the codec. 1e-9 is far below any sensor's
resolution, so a real decoding error still fails.

A ``normalizedOutput`` that differs does not fail the example: it is reported apart
(:attr:`ExampleOutcome.normalized_message`), as a warning about the codec's normalizer, since the decoded
data, which is what we deliver, matched.

A TTN codec that has only TTN v2's ``Decoder``/``Encoder`` answers its ``decodeUplink``/``encodeDownlink``
examples through them, wrapped as The Things Stack wraps them (``decoders.js.dialects``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from decoders.js.codec import JsCodec
from decoders.js.dialects import Dialect, ttn_function
from decoders.js.results import CallOutcome

ROUTINES = ("decodeUplink", "decodeDownlink", "encodeDownlink")
REL_TOLERANCE = 1e-9
ABS_TOLERANCE = 1e-12


@dataclass(frozen=True, slots=True)
class CodecExample:
    """One example: a routine, its input, and the output (and normalized output) it must give."""

    description: str
    routine: str
    input: Mapping[str, Any]
    output: Mapping[str, Any]
    normalized_output: Mapping[str, Any] | None = None

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], routine: str = "decodeUplink") -> CodecExample:
        """Read TTN's ``{description, input, output, normalizedOutput?}`` or ChirpStack's ``{name, input,
        expected}``; ValueError when input or output is missing or not an object."""
        source_input, output = raw.get("input"), raw.get("output", raw.get("expected"))
        if not isinstance(source_input, Mapping) or not isinstance(output, Mapping):
            raise ValueError("an example needs an input object and an output (or expected) object")
        normalized = raw.get("normalizedOutput")
        return cls(
            description=str(raw.get("description", raw.get("name", ""))),
            routine=routine,
            input=source_input,
            output=output,
            normalized_output=normalized if isinstance(normalized, Mapping) else None,
        )


def examples_in(items: Iterable[Any], routine: str, label: str) -> list[CodecExample]:
    """The examples of one repository file or section; a ValueError names ``label`` and the position."""
    out: list[CodecExample] = []
    for index, raw in enumerate(items):
        if not isinstance(raw, Mapping):
            raise ValueError(f"{label} {index + 1} is not an object")
        try:
            out.append(CodecExample.from_mapping(raw, routine))
        except ValueError as exc:
            raise ValueError(f"{label} {index + 1}: {exc}") from None
    return out


@dataclass(frozen=True, slots=True)
class ExampleOutcome:
    """Whether one example passed, and if not, where the actual output first differs; ``normalized_message``
    says where ``normalizeUplink`` differs from the example's ``normalizedOutput`` (a warning, not a failure)."""

    example: CodecExample
    passed: bool
    message: str = ""
    normalized_message: str = ""


def as_json(value: Any) -> Any:
    """``value`` as JSON would carry it (tuples become lists, datetimes ISO strings)."""
    return orjson.loads(orjson.dumps(value))


def json_equal(expected: Any, actual: Any) -> bool:
    """Deep equality of JSON values; booleans are not numbers, 1 == 1.0, and non-integers within tolerance."""
    return first_difference(expected, actual) is None


def numbers_match(expected: int | float, actual: int | float) -> bool:
    """Integers exactly; otherwise within :data:`REL_TOLERANCE` (:data:`ABS_TOLERANCE` near zero)."""
    if isinstance(expected, int) and isinstance(actual, int):
        return expected == actual
    return math.isclose(expected, actual, rel_tol=REL_TOLERANCE, abs_tol=ABS_TOLERANCE)


def _short(value: Any) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= 80 else text[:77] + "..."


def first_difference(expected: Any, actual: Any, path: str = "$") -> str | None:
    """Where two JSON values first differ, as ``path: expected X, got Y``; None when equal."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        same = isinstance(expected, bool) and isinstance(actual, bool) and expected is actual
        return None if same else f"{path}: expected {_short(expected)}, got {_short(actual)}"
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return None if numbers_match(expected, actual) else f"{path}: expected {_short(expected)}, got {_short(actual)}"
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in expected:
            if key not in actual:
                return f"{path}: missing key {key!r}"
            diff = first_difference(expected[key], actual[key], f"{path}.{key}")
            if diff is not None:
                return diff
        extra = [key for key in actual if key not in expected]
        return f"{path}: unexpected key {extra[0]!r} = {_short(actual[extra[0]])}" if extra else None
    if isinstance(expected, list) and isinstance(actual, list):
        for index, (want, got) in enumerate(zip(expected, actual, strict=False)):
            diff = first_difference(want, got, f"{path}[{index}]")
            if diff is not None:
                return diff
        if len(expected) != len(actual):
            return f"{path}: expected {len(expected)} items, got {len(actual)}"
        return None
    if type(expected) is type(actual) and expected == actual:
        return None
    return f"{path}: expected {_short(expected)}, got {_short(actual)}"


def _without_empty(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    return {k: v for k, v in value.items() if not (k in ("errors", "warnings") and v in ([], None))}


def _recv_time(raw: Any) -> datetime | None:
    if isinstance(raw, str):
        try:
            return datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def _answer(outcome: CallOutcome) -> Any:
    """What the routine gave, as the TTN validator sees it; a thrown error reads as ``{errors: [...]}``."""
    if outcome.error is not None:
        return {"errors": [outcome.error]}
    return _without_empty(outcome.value) if outcome.returned else None


def _normalized_difference(codec: JsCodec, example: CodecExample, decoded: Any) -> str | None:
    expected = _without_empty(as_json(example.normalized_output))
    if not codec.has_normalize:
        return "the example has normalizedOutput but the codec defines no normalizeUplink()"
    data = decoded.get("data") if isinstance(decoded, dict) else None
    answer = _answer(codec.call("normalizeUplink", {"data": data}))
    for side in (expected, answer):
        if isinstance(side, dict) and isinstance(side.get("data"), dict):
            side["data"] = [side["data"]]
    diff = first_difference(expected, answer)
    return None if diff is None else f"normalizeUplink: {diff}"


def _legacy_answer(codec: JsCodec, function: str, given: Mapping[str, Any]) -> Any:
    """A TTN v2 function's answer as The Things Stack's wrapper shapes it: ``{data}`` or ``{bytes, fPort}``."""
    if function == "Decoder":
        outcome = codec.call("Decoder", given.get("bytes"), given.get("fPort"))
        key = "data"
    else:
        outcome = codec.call("Encoder", given.get("data"), given.get("fPort"))
        key = "bytes"
    if outcome.error is not None:
        return {"errors": [outcome.error]}
    answer = {key: outcome.value} if outcome.returned else {}
    if key == "bytes" and given.get("fPort") is not None:
        answer["fPort"] = given["fPort"]
    return answer


def run_example(codec: JsCodec, example: CodecExample) -> ExampleOutcome:
    """Run one example against ``codec``."""
    if example.routine not in ROUTINES:
        return ExampleOutcome(example, False, f"unsupported routine {example.routine!r}")
    function = ttn_function(example.routine, codec.functions) if codec.dialect is Dialect.TTN else example.routine
    if function not in codec.functions:
        return ExampleOutcome(example, False, f"the codec defines no {example.routine}()")
    try:
        given = as_json(example.input)
        expected = _without_empty(as_json(example.output))
    except TypeError as exc:
        return ExampleOutcome(example, False, f"the example is not JSON: {exc}")
    recv_time = None
    if function != example.routine:
        answer = _without_empty(_legacy_answer(codec, function, given))
    else:
        if example.routine == "decodeUplink":
            recv_time = _recv_time(given.pop("recvTime", None)) or datetime.now().astimezone()
        answer = _answer(codec.call(example.routine, given, recv_time=recv_time))
    diff = first_difference(expected, answer)
    if diff is not None:
        return ExampleOutcome(example, False, diff)
    normalized = None
    if example.normalized_output is not None:
        normalized = _normalized_difference(codec, example, answer)
    return ExampleOutcome(example, True, normalized_message=normalized or "")


def run_examples(codec: JsCodec, examples: Sequence[CodecExample]) -> list[ExampleOutcome]:
    """Run every example; one outcome each, in order."""
    return [run_example(codec, example) for example in examples]
