"""Issue 13, finding 6: every call sees fresh codec state, so device B's decode never sees device A's data.

Each codec below remembers the first payload it saw through one channel (a top-level ``let``, a
closure, a function property, a ``Map``, a symbol-keyed global, a property on a built-in method) and
returns it; with state shared between calls (the old per-codec context), device B got device A's bytes.
"""

from __future__ import annotations

import time

import pytest

from decoders.js import JsCodec, JsCompileError, Limits

CHANNELS = {
    "let/const": """
        let first = null;
        const seen = [];
        function decodeUplink(input) {
          if (first === null) first = input.bytes;
          seen.push(input.bytes[0]);
          return { data: { first: first, seen: seen.length } };
        }""",
    "closure": """
        var decodeUplink = (function () {
          var first = null, seen = [];
          return function (input) {
            if (first === null) first = input.bytes;
            seen.push(1);
            return { data: { first: first, seen: seen.length } };
          };
        })();""",
    "function property": """
        function decodeUplink(input) {
          if (!decodeUplink.first) decodeUplink.first = input.bytes;
          decodeUplink.seen = (decodeUplink.seen || 0) + 1;
          return { data: { first: decodeUplink.first, seen: decodeUplink.seen } };
        }""",
    "Map": """
        var memory = new Map();
        function decodeUplink(input) {
          if (!memory.has('first')) memory.set('first', input.bytes);
          memory.set('seen', (memory.get('seen') || 0) + 1);
          return { data: { first: memory.get('first'), seen: memory.get('seen') } };
        }""",
    "symbol-keyed global": """
        var KEY = Symbol.for('iotd-test-state');
        function decodeUplink(input) {
          var state = globalThis[KEY] || (globalThis[KEY] = { first: input.bytes, seen: 0 });
          state.seen++;
          return { data: { first: state.first, seen: state.seen } };
        }""",
    "undeclared global": """
        function decodeUplink(input) {
          if (typeof remembered === 'undefined') remembered = { first: input.bytes, seen: 0 };
          remembered.seen++;
          return { data: { first: remembered.first, seen: remembered.seen } };
        }""",
    "property of a built-in method": """
        function decodeUplink(input) {
          var holder = JSON.parse;
          try { if (!holder.first) holder.first = input.bytes; } catch (e) {}
          try { holder.seen = (holder.seen || 0) + 1; } catch (e) {}
          return { data: { first: holder.first || input.bytes, seen: holder.seen || 1 } };
        }""",
    "property of a built-in's hidden prototype": """
        function decodeUplink(input) {
          var proto = Object.getPrototypeOf([][Symbol.iterator]());
          try { if (!proto.first) proto.first = input.bytes; } catch (e) {}
          return { data: { first: proto.first || input.bytes, seen: 1 } };
        }""",
}

DEVICE_A, DEVICE_B = bytes([0xAA, 0x01]), bytes([0xBB, 0x02])


@pytest.mark.parametrize("channel", list(CHANNELS))
def test_device_b_never_sees_device_a(channel: str) -> None:
    codec = JsCodec(CHANNELS[channel])
    assert codec.decode(DEVICE_A, 1).data == {"first": [0xAA, 0x01], "seen": 1}
    assert codec.decode(DEVICE_B, 1).data == {"first": [0xBB, 0x02], "seen": 1}
    assert codec.stats.contexts_built == 1  # fresh state without a context per call


def test_strict_codecs_and_top_level_this_work_on_every_call() -> None:
    source = """'use strict';
    var self = this;
    function decodeUplink(input) { return { data: { global: self === globalThis, n: input.bytes[0] } }; }"""
    codec = JsCodec(source)
    assert [codec.decode(bytes([n]), 1).data for n in (1, 2)] == [{"global": True, "n": 1}, {"global": True, "n": 2}]


def test_load_time_polyfills_keep_working_when_the_top_level_runs_again() -> None:
    source = """
    Array.prototype.total = function () { var t = 0; for (var i = 0; i < this.length; i++) t += this[i]; return t; };
    Object.defineProperty(Array.prototype, 'first', { value: function () { return this[0]; } });
    Object.defineProperties(String.prototype, { shout: { value: function () { return this.toUpperCase(); } } });
    Reflect.defineProperty(Number.prototype, 'half', { value: function () { return this / 2; } });
    if (!Array.prototype.includes) { Array.prototype.includes = function () { return false; }; }
    function decodeUplink(input) {
      return { data: { t: input.bytes.total(), f: input.bytes.first(), s: 'ab'.shout(), h: (4).half() } };
    }"""
    codec = JsCodec(source)
    for _ in range(3):
        assert codec.decode(b"\x01\x02", 1).data == {"t": 3, "f": 1, "s": "AB", "h": 2}


def test_what_a_codec_hangs_on_a_built_in_at_load_is_frozen() -> None:
    source = """
    Math.table = [1, 2, 3];
    function decodeUplink(input) {
      try { Math.table.push(input.bytes[0]); } catch (e) { return { data: { frozen: e instanceof TypeError } }; }
      return { data: { frozen: false } };
    }"""
    assert JsCodec(source).decode(b"\x09", 1).data == {"frozen": True}


@pytest.mark.parametrize("value", ["new Map()", "new Set()", "new Uint8Array(4)", "new Date(0)", "new WeakMap()"])
def test_a_stateful_object_left_on_a_built_in_at_load_is_refused(value: str) -> None:
    with pytest.raises(JsCompileError, match="on a built-in while loading"):
        JsCodec(f"Math.memory = {value};\nfunction decodeUplink(i) {{ return {{ data: {{}} }}; }}")


def test_a_source_that_closes_its_factory_is_refused() -> None:
    escape = "}, (globalThis.decodeUplink = function (i) { return { data: {} }; }), function () {"
    with pytest.raises(JsCompileError, match="must be a script"):
        JsCodec(escape)


def test_a_top_level_that_builds_a_table_runs_within_the_call_limit() -> None:
    source = """
    var TABLE = [];
    for (var i = 0; i < 256; i++) TABLE.push({ code: i, name: 'type-' + i });
    function decodeUplink(input) { return { data: { name: TABLE[input.bytes[0]].name } }; }"""
    codec = JsCodec(source, limits=Limits(time_ms=100))
    started = time.perf_counter()
    assert codec.decode(b"\x07", 1).data == {"name": "type-7"}
    assert time.perf_counter() - started < 0.1


@pytest.mark.parametrize(
    "how", ["Object.preventExtensions", "Object.seal", "Object.freeze", "Reflect.preventExtensions"]
)
def test_a_global_object_made_non_extensible_does_not_reach_the_next_call(how: str) -> None:
    """That cannot be undone in place: the context is rebuilt, and the next call can add globals again."""
    codec = JsCodec(f"""function decodeUplink(input) {{
      if (input.bytes[0] === 1) {how}(globalThis);
      scratch = 5;
      return {{ data: {{ extensible: Object.isExtensible(globalThis), scratch: typeof scratch }} }};
    }}""")
    assert codec.decode(bytes([1]), 1).data == {"extensible": False, "scratch": "undefined"}
    assert codec.decode(bytes([2]), 1).data == {"extensible": True, "scratch": "number"}
    assert codec.stats.state_rebuilds == 1
