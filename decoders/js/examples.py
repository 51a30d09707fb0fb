"""Run a codec's own examples (TTN device repository, ChirpStack device profiles) and say what differs.

An example is ``{description, input, output}`` for one routine: ``decodeUplink`` and ``decodeDownlink``
take ``input: {fPort, bytes, recvTime?, variables?}``, ``encodeDownlink`` takes ``input: {data, ...}``;
``output`` is what the routine must return, optionally with ``normalizedOutput`` for ``normalizeUplink``.
The routine's answer is compared as JSON (what ``JSON.stringify`` gives: ``undefined`` dropped, dates
as strings) by deep equality, as the TTN repository's validator does with lodash ``isEqual``; empty
``errors``/``warnings`` lists count as absent on both sides (The Things Stack omits them). Numbers
compare by value (1 equals 1.0), but a boolean never equals a number.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from decoders.js.codec import JsCodec
from decoders.js.results import CallOutcome

ROUTINES = ("decodeUplink", "decodeDownlink", "encodeDownlink")


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
    """Whether one example passed, and if not, where the actual output first differs."""

    example: CodecExample
    passed: bool
    message: str = ""


def as_json(value: Any) -> Any:
    """``value`` as JSON would carry it (tuples become lists, datetimes ISO strings)."""
    return orjson.loads(orjson.dumps(value))


def json_equal(expected: Any, actual: Any) -> bool:
    """Deep equality of JSON values; booleans are not numbers, and 1 == 1.0."""
    return first_difference(expected, actual) is None


def _short(value: Any) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= 80 else text[:77] + "..."


def first_difference(expected: Any, actual: Any, path: str = "$") -> str | None:
    """Where two JSON values first differ, as ``path: expected X, got Y``; None when equal."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        same = isinstance(expected, bool) and isinstance(actual, bool) and expected is actual
        return None if same else f"{path}: expected {_short(expected)}, got {_short(actual)}"
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return None if expected == actual else f"{path}: expected {_short(expected)}, got {_short(actual)}"
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


def run_example(codec: JsCodec, example: CodecExample) -> ExampleOutcome:
    """Run one example against ``codec``."""
    if example.routine not in ROUTINES:
        return ExampleOutcome(example, False, f"unsupported routine {example.routine!r}")
    if example.routine not in codec.functions:
        return ExampleOutcome(example, False, f"the codec defines no {example.routine}()")
    try:
        given = as_json(example.input)
        expected = _without_empty(as_json(example.output))
    except TypeError as exc:
        return ExampleOutcome(example, False, f"the example is not JSON: {exc}")
    recv_time = None
    if example.routine == "decodeUplink":
        recv_time = _recv_time(given.pop("recvTime", None)) or datetime.now().astimezone()
    answer = _answer(codec.call(example.routine, given, recv_time=recv_time))
    diff = first_difference(expected, answer)
    if diff is None and example.normalized_output is not None:
        diff = _normalized_difference(codec, example, answer)
    return ExampleOutcome(example, diff is None, diff or "")


def run_examples(codec: JsCodec, examples: Sequence[CodecExample]) -> list[ExampleOutcome]:
    """Run every example; one outcome each, in order."""
    return [run_example(codec, example) for example in examples]
