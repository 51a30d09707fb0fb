"""A codec cannot run away, reach the host, or leave state for the next call or another device."""

from __future__ import annotations

import time

import pytest

from decoders.js import JsCodec, JsCompileError, Limits

OK = "return { data: { ok: true } };"


def codec_with(body: str, limits: Limits | None = None, prelude: str = "") -> JsCodec:
    """A TTN codec whose fPort 1 runs ``body`` and any other fPort answers ``{ok: true}``."""
    return JsCodec(
        f"{prelude}\nfunction decodeUplink(input) {{\n if (input.fPort === 1) {{ {body} }}\n {OK}\n}}", limits=limits
    )


def test_an_infinite_loop_times_out_and_the_codec_still_works() -> None:
    codec = codec_with("while (true) {}", Limits(time_ms=50))
    started = time.perf_counter()
    assert codec.decode(b"", 1).errors == ["timed out after 50 ms"]
    assert time.perf_counter() - started < 2
    assert codec.decode(b"", 2).data == {"ok": True}
    assert codec.stats.timeouts == 1


def test_a_timeout_cannot_be_caught_by_the_codec() -> None:
    codec = codec_with("try { for (;;) {} } catch (e) { return { data: { caught: true } }; }", Limits(time_ms=30))
    assert codec.decode(b"", 1).errors == ["timed out after 30 ms"]


def test_a_huge_allocation_runs_out_of_memory_and_the_codec_still_works() -> None:
    codec = codec_with("var a = []; for (;;) a.push(new Array(100000).fill(7));", Limits(memory_bytes=8 * 1024 * 1024))
    assert codec.decode(b"", 1).errors == ["out of memory (limit 8 MiB)"]
    assert codec.decode(b"", 2).data == {"ok": True}
    assert codec.stats.out_of_memory == 1


def test_deep_recursion_is_a_stack_overflow_error() -> None:
    codec = codec_with("return (function f(n) { return f(n + 1) + 1; })(0);")
    assert "RangeError: Maximum call stack size exceeded" in codec.decode(b"", 1).errors[0]
    assert codec.decode(b"", 2).data == {"ok": True}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("require('fs');", "ReferenceError: require is not defined"),
        ("process.exit(1);", "ReferenceError: process is not defined"),
        ("std.open('/etc/passwd', 'r');", "ReferenceError: std is not defined"),
        ("os.exec(['ls']);", "ReferenceError: os is not defined"),
        ("global.x = 1;", "ReferenceError: global is not defined"),
        ("exports.x = 1;", "ReferenceError: exports is not defined"),
    ],
)
def test_no_host_access(body: str, error: str) -> None:
    assert codec_with(body).decode(b"", 1).errors[0].startswith(error)


def test_no_module_loading() -> None:
    with pytest.raises(JsCompileError, match="SyntaxError"):
        JsCodec("import * as os from 'os';\nfunction decodeUplink(i) { return { data: {} }; }")
    source = """
    function decodeUplink(input) {
      if (input.fPort === 1) {
        var pending = import('fs');
        pending.then(function (m) { fsLoaded = m; }, function (e) { fsError = String(e); });
        return { data: { promise: typeof pending.then } };
      }
      return { data: { loaded: typeof fsLoaded, error: typeof fsError } };
    }
    """
    codec = JsCodec(source)
    assert codec.decode(b"", 1).data == {"promise": "function"}  # a promise that rejects: there is no loader
    assert codec.decode(b"", 2).data == {"loaded": "undefined", "error": "undefined"}  # and it left nothing behind


def test_undeclared_globals_do_not_survive_a_call() -> None:
    codec = codec_with("counter = (typeof counter === 'undefined' ? 0 : counter) + 1; return { data: { n: counter } };")
    assert [codec.decode(b"", 1).data["n"] for _ in range(3)] == [1, 1, 1]


def test_global_object_tampering_is_undone() -> None:
    source = """
    var seen = function () {
      return { x: typeof x, hidden: typeof hidden, viaProto: typeof viaProto, json: typeof JSON.stringify,
               math: typeof Math, glob: typeof globalThis.extra };
    };
    function decodeUplink(input) {
      if (input.fPort === 1) {
        globalThis.extra = 1; this.x = 2;
        Object.defineProperty(globalThis, 'hidden', { value: 3 });
        Object.setPrototypeOf(globalThis, { viaProto: 4 });
        JSON = null; Math = null;
        seen = function () { return { hijacked: true }; };
      }
      return { data: seen() };
    }
    """
    codec = JsCodec(source)
    codec.decode(b"", 1)
    assert codec.decode(b"", 2).data == {
        "x": "undefined",
        "hidden": "undefined",
        "viaProto": "undefined",
        "json": "function",
        "math": "object",
        "glob": "undefined",
    }


def test_prototype_pollution_is_not_visible_to_the_next_call_or_another_codec() -> None:
    source = """
    function decodeUplink(input) {
      if (input.fPort === 1) {
        Object.prototype.polluted = 'yes';
        Array.prototype.map = function () { return ['evil']; };
        String.prototype.trim = function () { return 'evil'; };
      }
      var mapped = [1].map(function (v) { return v; });
      return { data: { polluted: ({}).polluted || null, map: mapped, trim: ' a '.trim() } };
    }
    """
    first, second = JsCodec(source), JsCodec(source)
    first.decode(b"", 1)
    clean = {"polluted": None, "map": [1], "trim": "a"}
    assert first.decode(b"", 2).data == clean
    assert second.decode(b"", 2).data == clean


def test_load_time_prototype_extensions_and_overrides_still_work() -> None:
    source = """
    function sum() { return this.reduce(function (a, b) { return a + b; }, 0); }
    Object.defineProperty(Array.prototype, 'sum', { value: sum });
    function decodeUplink(input) {
      var o = {}; o.toString = function () { return 'custom'; };
      var e = new Error('x'); e.name = 'FrameError'; e.message = 'short frame';
      return { data: { sum: input.bytes.sum(), text: String(o), error: String(e) } };
    }
    """
    assert JsCodec(source).decode(b"\x01\x02", 1).data == {
        "sum": 3,
        "text": "custom",
        "error": "FrameError: short frame",
    }


def test_inputs_are_fresh_copies_every_call() -> None:
    mutating = JsCodec(
        "function decodeUplink(input) { var n = input.bytes.length; input.bytes.push(9); "
        "input.fPort = 99; return { data: { n: n, port: input.fPort } }; }"
    )
    assert [mutating.decode(b"\x01\x02", 1).data for _ in range(2)] == [{"n": 2, "port": 99}] * 2


def test_top_level_data_starts_fresh_every_call_without_rebuilding_the_context() -> None:
    source = """
    var decoded = {};
    var history = [];
    function decodeUplink(input) {
      if (input.fPort === 1) decoded.temperature = input.bytes[0];
      if (input.fPort === 2) decoded.humidity = input.bytes[0];
      if (input.fPort === 3) history.push(input.bytes[0]);
      return { data: { decoded: decoded, history: history.length } };
    }
    """
    codec = JsCodec(source)
    assert codec.decode(b"\x15", 1).data == {"decoded": {"temperature": 21}, "history": 0}
    assert codec.decode(b"\x37", 2).data == {"decoded": {"humidity": 55}, "history": 0}  # no stale temperature
    assert codec.decode(b"\x01", 3).data["history"] == 1
    assert codec.decode(b"\x01", 3).data["history"] == 1
    assert codec.stats.state_rebuilds == 0 and codec.stats.contexts_built == 1


def test_closures_start_fresh_and_isolation_keys_still_get_their_own_context() -> None:
    source = (
        "var decodeUplink = (function () { var n = 0; return function () { n++; return { data: { n: n } }; }; })();"
    )
    codec = JsCodec(source, max_isolated=2)
    assert [codec.decode(b"", 1).data["n"] for _ in range(2)] == [1, 1]
    assert codec.decode(b"", 1, isolation_key="org-a").data["n"] == 1
    assert codec.decode(b"", 1, isolation_key="org-b").data["n"] == 1
    assert codec.stats.contexts_built == 3
    codec.decode(b"", 1, isolation_key="org-c")  # evicts org-a, the least recently used
    codec.decode(b"", 1, isolation_key="org-a")
    assert codec.stats.contexts_built == 5


@pytest.mark.parametrize(
    ("source", "message", "line"),
    [
        ("var a = 1;\nfunction decodeUplink(input) {\n  return { data: { a: a } ;\n}", "SyntaxError", 3),
        ("var a = 1;\nnull.boom;\nfunction decodeUplink(i) {}", "the codec failed to load: TypeError", 2),
        ("for (;;) {}\nfunction decodeUplink(i) {}", "loading the codec timed out", None),
        ("var a = 1;\x00", "NUL character", None),
    ],
)
def test_bad_code_is_rejected_at_construction(source: str, message: str, line: int | None) -> None:
    with pytest.raises(JsCompileError) as caught:
        JsCodec(source, limits=Limits(load_time_ms=100))
    assert message in str(caught.value)
    assert caught.value.line == line
    assert isinstance(caught.value, ValueError)


def test_a_catastrophic_regex_stops_at_the_time_limit() -> None:
    """Issue 13, finding 5: the old engine's regex ignored the limit (seconds at 27 characters, doubling each)."""
    codec = codec_with("return { data: { m: /^(a+)+$/.test('a'.repeat(40) + 'b') } };", Limits(time_ms=100))
    started = time.perf_counter()
    assert codec.decode(b"", 1).errors == ["timed out after 100 ms"]
    assert time.perf_counter() - started < 1.0
    assert codec.decode(b"", 2).data == {"ok": True} and codec.stats.timeouts == 1
