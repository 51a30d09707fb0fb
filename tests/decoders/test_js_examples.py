"""The example runner compares like the TTN validator: JSON deep equality, with a diff that says where."""

from __future__ import annotations

from typing import Any

import pytest

from decoders.js import JsCodec
from decoders.js.examples import CodecExample, first_difference, json_equal, run_examples

CODEC = JsCodec("""
function decodeUplink(input) {
  if (input.fPort === 2) throw new Error('boom');
  return { data: { v: input.bytes[0], flag: input.bytes[0] > 0, gone: undefined, at: input.recvTime.toISOString() },
           warnings: [] };
}
function normalizeUplink(input) { return { data: { level: input.data.v } }; }
""")


@pytest.mark.parametrize(
    ("expected", "actual", "equal"),
    [
        ({"a": 1}, {"a": 1.0}, True),
        ({"a": True}, {"a": 1}, False),
        ({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]}, True),
        ({"a": [1, 2]}, {"a": [1]}, False),
        ({"a": "1"}, {"a": 1}, False),
        ({}, {"extra": 0}, False),
    ],
)
def test_json_equality(expected: Any, actual: Any, equal: bool) -> None:
    assert json_equal(expected, actual) is equal


def test_difference_messages_point_at_the_path() -> None:
    assert first_difference({"data": {"t": [1, 2]}}, {"data": {"t": [1, 3]}}) == "$.data.t[1]: expected 2, got 3"
    assert first_difference({"data": {"t": 1}}, {"data": {}}) == "$.data: missing key 't'"
    assert first_difference({"data": {}}, {"data": {"x": 1}}) == "$.data: unexpected key 'x' = 1"


def example(output: dict[str, Any], fport: int = 1, **extra: Any) -> CodecExample:
    raw = {
        "description": "d",
        "input": {"fPort": fport, "bytes": [5], "recvTime": "2024-01-02T03:04:05Z"},
        "output": output,
    } | extra
    return CodecExample.from_mapping(raw)


def test_runner_drops_undefined_and_empty_lists_and_checks_normalized_output() -> None:
    at = "2024-01-02T03:04:05.000Z"
    outcomes = run_examples(
        CODEC,
        [
            example({"data": {"v": 5, "flag": True, "at": at}}),
            example(
                {"data": {"v": 5, "flag": True, "at": at}, "warnings": []}, normalizedOutput={"data": [{"level": 5}]}
            ),
            example({"data": {"v": 5, "flag": 1, "at": at}}),
            example({"data": {"v": 5, "flag": True, "at": at}}, normalizedOutput={"data": {"level": 6}}),
            example({"errors": ["Error: boom (in decodeUplink, line 3)"]}, fport=2),
        ],
    )
    assert [(o.passed, o.message, o.normalized_message) for o in outcomes] == [
        (True, "", ""),
        (True, "", ""),
        (False, "$.data.flag: expected 1, got true", ""),
        (True, "", "normalizeUplink: $.data[0].level: expected 6, got 5"),  # a warning apart, not a failure
        (True, "", ""),
    ]


def test_malformed_examples_are_rejected() -> None:
    with pytest.raises(ValueError, match="input object"):
        CodecExample.from_mapping({"description": "no input", "output": {}})
    unsupported = CodecExample("x", "decodeSomething", {}, {})
    assert run_examples(CODEC, [unsupported])[0].message == "unsupported routine 'decodeSomething'"
