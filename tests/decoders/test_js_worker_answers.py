"""Issue 16, item 3: a worker answers a plain TTN uplink straight from the harness's JSON, with measurement tables
instead of value objects. Each shape below is answered both ways, the worker's and the general path's
(``decode_measured``), and the two must be the same bytes on the wire; the measurement tables must give what
walking every path gave before."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
import pytest

from decoders.contract import NUMBER, Measurement, measurement, preset_measurements, preset_rows
from decoders.js import JsCodec, Limits
from decoders.js.trial import decode_measured
from decoders.js.worker_codec import WorkerCodec, answer_of, plain_answer
from decoders.ttn_normalized import _OPEN, PATHS, measurements_from_normalized

RECEIVED_MS = 1_714_557_600_000

# decodeUplink's answer and normalizeUplink's, as JavaScript expressions of `b` (the bytes)
SHAPES: dict[str, tuple[str, str | None]] = {
    "plain": (
        "{data: {temperature: b[0] / 10, humidity: b[1], vdd: 3600, light: 5}, warnings: []}",
        "{data: {air: {temperature: 21.5, relativeHumidity: 40}}}",
    ),
    "no warnings key": ("{data: {co2: 400}}", "{data: [{air: {co2: 500}}, {soil: {moisture: 3}}]}"),
    "string warnings": ("{data: {battery: 90}, warnings: ['low', 'odd']}", "{data: {}}"),
    "warnings not strings": ("{data: {battery: 90}, warnings: [1, {a: 2}]}", None),
    "warnings not a list": ("{data: {battery: 90}, warnings: 'one'}", None),
    "errors": ("{data: {t: 1}, errors: ['bad frame']}", None),
    "errors empty": ("{data: {temperature: 1}, errors: []}", "{data: {air: {temperature: 2}}}"),
    "errors a string": ("{data: {temperature: 1}, errors: ''}", None),
    "errors false": ("{data: {temperature: 1}, errors: false}", None),
    "data missing": ("{warnings: []}", None),
    "data not an object": ("{data: [1, 2]}", None),
    "not an object": ("42", None),
    "undefined": ("undefined", None),
    "throws": ("(function () { throw new RangeError('nope'); })()", None),
    "console": ("(console.log('hi'), {data: {temperature: 3}})", "{data: {air: {temperature: 4}}}"),
    "normalize throws": ("{data: {temperature: 1}}", "(function () { throw new Error('norm'); })()"),
    "normalize errors": ("{data: {temperature: 1}}", "{errors: ['cannot']}"),
    "normalize not an object": ("{data: {temperature: 1}}", "7"),
    "normalize data odd": ("{data: {temperature: 1}}", "{data: [1, {air: {temperature: 2}}]}"),
    "normalize list empty": ("{data: {temperature: 1}}", "{data: []}"),
    "normalize bools and states": (
        "{data: {leak: true, door_open: 0}}",
        "{data: {action: {contactState: 'open', motion: {detected: true, count: 3.0}}, water: {leak: false}}}",
    ),
    "normalize dotted and empty keys": (
        "{data: {}}",
        "{data: {'air.temperature': 5, '': {soil: {moisture: 7}},"
        " metering: {'water.total': 1234}, air: {co2: {value: 1}}}}",
    ),
    "normalize scaled": ("{data: {}}", "{data: {soil: {ec: 1.2345678}, metering: {water: {total: 1001}}}}"),
    "normalize first wins": (
        "{data: {humidity: 50}}",
        "{data: [{air: {relativeHumidity: 1, temperature: 2}}, {air: {temperature: 3}}]}",
    ),
    "lone surrogate": ("{data: {name: '\\ud800x', temperature: 2}}", "{data: {air: {temperature: 1}}}"),
    "big and odd numbers": ("{data: {temperature: 1e21, humidity: -0, pressure: 0.1 + 0.2, count: 2 ** 53}}", None),
    "non-finite": ("{data: {temperature: NaN, humidity: Infinity}}", None),
}


def codec_source(decoded: str, normalized: str | None) -> str:
    source = f"function decodeUplink(input) {{ var b = input.bytes; return {decoded}; }}\n"
    if normalized is not None:
        source += f"function normalizeUplink(input) {{ return {normalized}; }}\n"
    return source


def both_ways(
    source: str,
    *,
    dialect: str | None = None,
    limits: Limits | None = None,
    variables: dict[str, str] | None = None,
    payload: bytes = b"\xd7\x28",
    fport: Any = 5,
    received_ms: int = RECEIVED_MS,
) -> tuple[bytes, bytes]:
    """The worker's answer and the general path's, as the bytes that would go on the wire."""
    fast = WorkerCodec(source, dialect=dialect, limits=limits)
    general = JsCodec(source, dialect=dialect, limits=limits)
    answer = fast.decode_answer(payload, fport, variables=variables, recv_time_ms=received_ms)
    expected = answer_of(*decode_measured(general, payload, fport, variables=variables, recv_time_ms=received_ms))
    return orjson.dumps(answer), orjson.dumps(expected)


@pytest.mark.parametrize("shape", SHAPES)
def test_the_worker_answers_as_the_general_path_does(shape: str) -> None:
    fast, general = both_ways(codec_source(*SHAPES[shape]))
    assert fast == general


@pytest.mark.parametrize("shape", ["plain", "console", "normalize throws"])
def test_console_capture_and_chirpstack_variables_answer_the_same(shape: str) -> None:
    source = codec_source(*SHAPES[shape])
    fast, general = both_ways(source, limits=Limits(capture_console=True))
    assert fast == general
    fast, general = both_ways(source, dialect="chirpstack-v4", variables={"k": "v"})
    assert fast == general
    fast, general = both_ways(source, dialect="chirpstack-v4", variables=None)
    assert fast == general


def test_other_dialects_and_limits_answer_the_same() -> None:
    for source, dialect in [
        ("function Decoder(bytes, port) { return {temperature: bytes[0]}; }", None),
        ("function Decode(fPort, bytes, variables) { return {humidity: bytes[1]}; }", None),
        ("function decodeUplink(input) { while (true) {} }", None),
        ("function decodeUplink(input) { var a = []; while (true) a.push('xxxxxxxx' + a.length); }", None),
    ]:
        fast, general = both_ways(source, dialect=dialect, limits=Limits(time_ms=50, memory_bytes=4 * 1024 * 1024))
        assert fast == general, source


INPUT_ECHO = """
function decodeUplink(input) {
  var seen = [];
  for (var key in input) seen.push([key, typeof input[key], Array.isArray(input[key]), Object.keys(input[key] || {})]);
  return { data: { input: JSON.stringify(input), seen: seen, time: input.recvTime.getTime(),
                   proto: Object.getPrototypeOf(input.bytes) === Array.prototype } };
}
"""


@pytest.mark.parametrize("payload", [b"", b"\x00", b"\x00\xff\x80\x7f", bytes(range(256))])
@pytest.mark.parametrize("fport", [None, 0, 5, 255, 2**31 - 1, 2**31, -1, True])
def test_the_codec_sees_the_same_input_both_ways(payload: bytes, fport: Any) -> None:
    """The worker hands the harness the input's parts (bytes, fPort, receive time, variables) instead of one
    JSON envelope; the codec must see the same object: keys, order, types, values."""
    for dialect, variables in [(None, None), (None, {}), ("chirpstack-v4", None), ("chirpstack-v4", {"a": "b\u0000ü"})]:
        fast, general = both_ways(INPUT_ECHO, dialect=dialect, variables=variables, payload=payload, fport=fport)
        assert fast == general, (dialect, variables)


@pytest.mark.parametrize("received_ms", [0, -1, 2**31, 2**53, 2**53 + 1, 2**64])
def test_receive_times_reach_the_codec_exactly(received_ms: int) -> None:
    source = "function decodeUplink(input) { return { data: { t: input.recvTime.getTime() } }; }"
    fast, general = both_ways(source, received_ms=received_ms)
    assert fast == general


def test_a_plain_answer_takes_the_short_path() -> None:
    """The envelope every well-behaved codec gives is answered without the general path's objects."""
    text = (
        '{"r":{"data":{"temperature":22.6,"humidity":41,"vdd":3645},"warnings":[]},'
        '"n":{"data":{"air":{"temperature":22.6,"relativeHumidity":41}}}}'
    )
    assert plain_answer(text, True) == {
        "d": {"temperature": 22.6, "humidity": 41, "vdd": 3645},
        "w": [],
        "e": [],
        "m": [["temperature", "Cel", 22.6], ["humidity", "%RH", 41.0]],
    }
    assert plain_answer('{"r":{"data":{}},"l":["console"]}', False) is None  # console lines: the general path
    assert plain_answer('{"r":{"data":{}}}', True) is None  # not normalized: asked separately


def _flatten(value: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    """The walk measurements_from_normalized did before its tables: every leaf, every path."""
    if isinstance(value, Mapping):
        for key, inner in value.items():
            yield from _flatten(inner, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def reference_normalized(items: Iterable[Mapping[str, Any]]) -> list[Measurement]:
    out: dict[str, Measurement] = {}
    for item in items:
        for path, value in _flatten(item):
            target = PATHS.get(path)
            if target is None or target[0] in out:
                continue
            name, scale = target
            if isinstance(value, str) and value.upper() in _OPEN:
                value = _OPEN[value.upper()]
            if isinstance(value, bool):
                value = int(value)
            if not isinstance(value, NUMBER):
                continue
            out[name] = measurement(name, round(value * scale, 6) if scale != 1 else value)
    return list(out.values())


NORMALIZED: list[list[Any]] = [
    [{"air": {"temperature": 21, "relativeHumidity": 49.5, "co2": "400"}}],
    [{"air.temperature": 5, "air": {"temperature": 6}}, {"soil": {"ec": 2.5, "pH": True}}],
    [{"": {"air": {"pressure": 1013}, "": {"wind": {"speed": 3}}}}, {"position": {"latitude": 56.1, "altitude": None}}],
    [{"metering": {"water.total": 1500, "electricity": {"total": 3}}, "water": {"leak": "CLOSED"}}],
    [{"action": {"motion": {"detected": False, "count": 4.0}, "contactState": "Open"}, "sound": {"value": [1]}}],
    [{"air": {"temperature": {"value": 3}}, "wind.speed": {"x": 1}}, 7, {"air": 1}],
]


@pytest.mark.parametrize("items", NORMALIZED)
def test_the_normalized_tables_give_what_the_full_walk_gave(items: list[Any]) -> None:
    got = measurements_from_normalized(items)
    want = reference_normalized(items)
    assert got == want and [type(m.value) for m in got] == [type(m.value) for m in want]


def test_preset_rows_are_the_preset_measurements() -> None:
    data = {"temperature": 21, "humidity": True, "battery": 90.0, "motion": 3.0, "co2": "400", "other": 1, "leak": 2}
    assert preset_rows(data) == [list(m) for m in preset_measurements(data)]
    assert [type(v) for _, _, v in preset_rows(data)] == [float, float, float, int, int]


def test_entry_functions_are_the_ones_the_top_level_defined() -> None:
    """The factory's picker looks decodeUplink and normalizeUplink up right after the top level ran: a decoder
    that reassigns normalizeUplink still gets the one defined, and the next call defines it afresh."""
    source = """
    function decodeUplink(input) {
      normalizeUplink = function () { return { data: { air: { temperature: 99 } } }; };
      return { data: { humidity: input.bytes[0] } };
    }
    function normalizeUplink(input) { return { data: { air: { temperature: 2 } } }; }
    """
    fast = WorkerCodec(source)
    for _ in range(2):
        answer = fast.decode_answer(b"\x07", 5, recv_time_ms=RECEIVED_MS)
        assert answer["m"] == [["humidity", "%RH", 7.0], ["temperature", "Cel", 2.0]]
    fast_bytes, general_bytes = both_ways(source)
    assert fast_bytes == general_bytes
