"""The JavaScript runtime speaks each dialect, with the shims and inputs published codecs rely on."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from decoders.contract import DeviceType
from decoders.js import Dialect, JsCodec, JsCompileError, Limits, detect_dialect
from decoders.js.bridge import as_decoder
from decoders.js.engine import Engine
from decoders.js.examples import CodecExample

TTN = r"""
function decodeUplink(input) {
  if (input.fPort !== 1) return { errors: ['unknown FPort'] };
  var b = input.bytes;
  var t = ((b[0] << 8) | b[1]);
  if (t & 0x8000) t -= 0x10000;
  return {
    data: { temperature: t / 10, isArray: Array.isArray(b), isDate: input.recvTime instanceof Date,
            at: input.recvTime.toISOString(), hasVariables: 'variables' in input },
    warnings: t > 400 ? ['hot'] : []
  };
}
function normalizeUplink(input) {
  if (input.data.temperature > 1000) return { errors: ['implausible'] };
  if (input.data.temperature < 0) return { data: [{ air: { temperature: input.data.temperature } }, { air: {} }] };
  return { data: { air: { temperature: input.data.temperature } } };
}
function encodeDownlink(input) {
  if (input.data.led === 'green') return { bytes: [1], fPort: 2 };
  if (input.data.led === 'bad') return { bytes: [300] };
  return { errors: ['invalid LED color'] };
}
function decodeDownlink(input) { return { data: { led: input.bytes[0] === 1 ? 'green' : 'off' } }; }
"""
WHEN = datetime(2024, 5, 1, 10, 0, 0, 123000, tzinfo=UTC)


@pytest.fixture(scope="module")
def ttn() -> JsCodec:
    return JsCodec(TTN)


def test_ttn_decode_gets_bytes_as_array_and_recv_time_as_date(ttn: JsCodec) -> None:
    result = ttn.decode(bytes.fromhex("0117"), 1, recv_time=WHEN)
    assert result.ok
    assert result.data == {
        "temperature": 27.9,
        "isArray": True,
        "isDate": True,
        "at": "2024-05-01T10:00:00.123Z",
        "hasVariables": False,
    }
    assert result.warnings == []


def test_ttn_errors_and_warnings(ttn: JsCodec) -> None:
    assert ttn.decode(b"\x01\x02", 9).errors == ["unknown FPort"]
    assert ttn.decode(bytes.fromhex("0200"), 1).warnings == ["hot"]
    assert ttn.decode(bytes.fromhex("ff9c"), 1).data["temperature"] == -10


def test_normalize_uplink_object_list_and_errors(ttn: JsCodec) -> None:
    assert ttn.has_normalize
    assert ttn.normalize({"temperature": 21.5}).data == [{"air": {"temperature": 21.5}}]
    assert ttn.normalize({"temperature": -1}).data == [{"air": {"temperature": -1}}, {"air": {}}]
    assert ttn.normalize({"temperature": 5000}).errors == ["implausible"]
    plain = JsCodec("function decodeUplink(i) { return { data: {} }; }")
    assert not plain.has_normalize
    assert plain.normalize({}).errors == ["the codec defines no normalizeUplink()"]


def test_decode_and_normalize_run_in_one_call(ttn: JsCodec) -> None:
    before = ttn.stats.calls
    result, normalized = ttn.decode_normalized(bytes.fromhex("0117"), 1, recv_time=WHEN)
    assert ttn.stats.calls == before + 1
    assert result.ok and normalized is not None and normalized.data == [{"air": {"temperature": 27.9}}]
    _, implausible = ttn.decode_normalized(bytes.fromhex("2711"), 1)
    assert implausible is not None and implausible.errors == ["implausible"]
    failed, none = ttn.decode_normalized(b"\x01\x02", 9)
    assert failed.errors == ["unknown FPort"] and none is None
    plain = JsCodec("function decodeUplink(i) { return { data: { v: 1 } }; }")
    assert plain.decode_normalized(b"", 1) == (plain.decode(b"", 1), None)


def test_encode_and_decode_downlink(ttn: JsCodec) -> None:
    assert ttn.can_encode
    good = ttn.encode_downlink({"led": "green"})
    assert (good.payload, good.fport, good.errors) == (b"\x01", 2, [])
    assert ttn.encode_downlink({"led": "blue"}).errors == ["invalid LED color"]
    assert "integers 0-255" in ttn.encode_downlink({"led": "bad"}).errors[0]
    assert ttn.decode_downlink(b"\x01", 2).data == {"led": "green"}


def test_chirpstack_v4_passes_variables() -> None:
    source = """
    function decodeUplink(input) { return { data: { scale: Number(input.variables.scale || 1) * input.bytes[0] } }; }
    function encodeDownlink(input) { return { bytes: [Number(input.variables.base), input.data.v] }; }
    """
    codec = JsCodec(source, dialect="chirpstack-v4")
    assert codec.dialect is Dialect.CHIRPSTACK_V4
    assert codec.decode(b"\x05", 1, variables={"scale": "3"}).data == {"scale": 15}
    assert codec.decode(b"\x05", 1).data == {"scale": 5}
    encoded = codec.encode_downlink({"v": 7}, fport=10, variables={"base": "9"})
    assert (encoded.payload, encoded.fport) == (b"\x09\x07", 10)


def test_chirpstack_v3_decode_returns_data_directly() -> None:
    source = """
    function Decode(fPort, bytes, variables) {
      if (fPort === 9) return undefined;
      return { port: fPort, first: bytes[0], unit: variables.unit };
    }
    function Encode(fPort, obj, variables) { return [fPort, obj.level]; }
    """
    codec = JsCodec(source)
    assert codec.dialect is Dialect.CHIRPSTACK_V3
    assert codec.decode(b"\x2a", 3, variables={"unit": "C"}).data == {"port": 3, "first": 42, "unit": "C"}
    assert codec.decode(b"\x2a", 9).errors == ["Decode() returned undefined, not an object"]
    assert codec.encode_downlink({"level": 4}, fport=5).payload == b"\x05\x04"
    assert codec.encode_downlink({"level": 4}).errors == ["ChirpStack v3 Encode() needs an fPort"]


OS2IOT = r"""
var decode = function (payload, metadata) {
  if (payload.fPort === 9) return false;
  var bytes = Buffer.from(payload.data, 'base64');
  var extra = JSON.parse(metadata.metadata);
  payload.data = 'mutated';
  metadata.name = 'mutated';
  var entity = {
    id: 'urn:ngsi-ld:Device:' + payload.devEUI,
    type: 'Device',
    temperature: { type: 'Property', value: bytes.readInt16LE(0) / 100, observedAt: payload.rxInfo[0].time },
    gateway: payload.rxInfo[0].gatewayID,
    snr: payload.rxInfo[0].loRaSNR,
    floor: extra.floor,
    location: metadata.location,
    battery: metadata.lorawanSettings ? metadata.lorawanSettings.deviceStatusBattery : null,
    keys: Object.keys(metadata).sort()
  };
  return payload.fPort === 2 ? entity : [entity];
};
"""
EVENT: dict[str, Any] = {
    "deduplicationId": "d1",
    "time": "2024-05-01T10:00:00Z",
    "deviceInfo": {"devEui": "a81758fffe0312ab", "deviceName": "Room 1", "applicationId": "app"},
    "fPort": 5,
    "data": "6AM=",
    "rxInfo": [{"gatewayId": "gw1", "nsTime": "2024-05-01T10:00:00.2Z", "rssi": -90, "snr": 7.5}],
}
DEVICE: dict[str, Any] = {
    "name": "Room 1",
    "dev_eui": "a81758fffe0312ab",
    "location": {"lat": 56.15, "lon": 10.2},
    "metadata": {"floor": 2},
    "battery": 80,
    "app_key": "00112233445566778899aabbccddeeff",
}


def test_os2iot_gets_the_event_with_v3_aliases_and_its_device_record() -> None:
    codec = JsCodec(OS2IOT)
    assert codec.dialect is Dialect.OS2IOT
    result = codec.decode(b"\xe8\x03", 5, event=EVENT, device=DEVICE)
    assert result.ok, result.errors
    (entity,) = result.data["items"]
    assert entity["id"] == "urn:ngsi-ld:Device:a81758fffe0312ab"
    assert entity["temperature"]["value"] == 10
    assert entity["temperature"]["observedAt"] == "2024-05-01T10:00:00.2Z"
    assert (entity["gateway"], entity["snr"], entity["floor"], entity["battery"]) == ("gw1", 7.5, 2, 80)
    assert entity["location"] == {"type": "Point", "coordinates": [10.2, 56.15]}
    assert entity["keys"] == ["deviceEUI", "location", "lorawanSettings", "metadata", "name"]  # no app_key


def test_os2iot_mutations_stay_inside_the_call_and_results_are_mapped() -> None:
    codec = JsCodec(OS2IOT)
    first = codec.decode(b"\xe8\x03", 2, event=EVENT | {"fPort": 2}, device=DEVICE)
    second = codec.decode(b"\xe8\x03", 2, event=EVENT | {"fPort": 2}, device=DEVICE)
    assert first.data == second.data and first.data["type"] == "Device"
    assert EVENT["data"] == "6AM=" and DEVICE["name"] == "Room 1"
    assert codec.decode(b"", 9, event=EVENT | {"fPort": 9}).errors == [
        "decode() returned false: the frame was not decoded"
    ]


def test_os2iot_without_an_event_builds_one_from_the_frame() -> None:
    codec = JsCodec(
        "function decode(p, m) { return { data: p.data, port: p.fPort, eui: p.devEUI, meta: m.metadata }; }"
    )
    result = codec.decode(b"\x01\x02", 7, device={"dev_eui": "0102030405060708"})
    assert result.data == {"data": "AQI=", "port": 7, "eui": "0102030405060708", "meta": "{}"}


BUFFER = r"""
function decodeUplink(input) {
  var b = Buffer.from(input.bytes);
  var h = Buffer.from('0102fffe', 'hex');
  var s = Buffer.from('AQL//g==', 'base64');
  var w = Buffer.alloc(4);
  w.writeUInt16BE(0xabcd, 0);
  w.writeInt16LE(-2, 2);
  var out = {
    len: b.length, first: b[0], u8: b.readUInt8(1), u16le: b.readUInt16LE(0), u16be: b.readUInt16BE(0),
    i16le: h.readInt16LE(2), u32le: b.readUInt32LE(0), u32be: b.readUInt32BE(0), i32be: h.readInt32BE(0),
    i8: h.readInt8(2), same: h.equals(s), hex: s.toString('hex'), b64: h.toString('base64'),
    written: w.toString('hex'), slice: Array.from(h.slice(1, 3)), isBuffer: Buffer.isBuffer(h),
    lower: b.readUint16LE(0), atob: atob('SGk='), btoa: btoa('Hi'), at: [1, 2, 3].at(-1)
  };
  try { b.readUInt32LE(2); } catch (e) { out.range = e.name; }
  return { data: out };
}
"""


def test_buffer_and_atob_shims() -> None:
    data = JsCodec(BUFFER).decode(bytes.fromhex("01020304"), 1).data
    assert data == {
        "len": 4,
        "first": 1,
        "u8": 2,
        "u16le": 0x0201,
        "u16be": 0x0102,
        "i16le": -257,
        "u32le": 0x04030201,
        "u32be": 0x01020304,
        "i32be": 0x0102FFFE,
        "i8": -1,
        "same": True,
        "hex": "0102fffe",
        "b64": "AQL//g==",
        "written": "abcdfeff",
        "slice": [2, 255],
        "isBuffer": True,
        "lower": 0x0201,
        "atob": "Hi",
        "btoa": "SGk=",
        "at": 3,
        "range": "RangeError",
    }


def test_shims_are_absent_when_the_source_does_not_mention_them() -> None:
    codec = JsCodec("function decodeUplink(i) { var g = globalThis; return { data: { b: typeof g['Buf' + 'fer'] } }; }")
    assert codec.decode(b"", 1).data == {"b": "undefined"}


def test_console_is_a_no_op_unless_captured() -> None:
    source = (
        "function decodeUplink(i) { for (var n = 0; n < 30; n++) console.log('line', n, {a: 1}); return { data: {} }; }"
    )
    assert JsCodec(source).decode(b"", 1).warnings == []
    captured = JsCodec(source, limits=Limits(capture_console=True, max_console_lines=3)).decode(b"", 1).warnings
    assert captured == [
        'console: line 0 {"a":1}',
        'console: line 1 {"a":1}',
        'console: line 2 {"a":1}',
        "console: (27 more console lines dropped)",
    ]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("var v = null; return v.x;", "TypeError: cannot read property 'x' of null (in decodeUplink, line 2)"),
        ("throw 'plain string';", "plain string"),
        ("throw new RangeError('bad frame');", "RangeError: bad frame (in decodeUplink, line 2)"),
        ("return 42;", "decodeUplink() returned a number, not an object"),
        ("return undefined;", "decodeUplink() returned undefined, not an object"),
        ("return { warnings: [] };", "decodeUplink() returned neither data nor errors"),
        ("return { data: [1, 2] };", "decodeUplink() returned data that is an array, not an object"),
        ("return { data: { n: 1n } };", "the result is not JSON: TypeError"),
        ("var o = {}; o.self = o; return { data: o };", "the result is not JSON: TypeError"),
        ("return { data: { big: 'x'.repeat(300000) } };", "the result is too large"),
        ("return { errors: [{ code: 7 }] };", '{"code":7}'),
    ],
)
def test_failures_become_errors(body: str, expected: str) -> None:
    result = JsCodec(f"function decodeUplink(input) {{\n  {body}\n}}").decode(b"\x00", 1)
    assert len(result.errors) == 1 and result.errors[0].startswith(expected), result.errors


def test_non_json_values_are_dropped_as_json_stringify_does() -> None:
    source = (
        "function decodeUplink(i) { return { data: { u: undefined, f: function () {}, n: NaN, d: new Date(0) } }; }"
    )
    assert JsCodec(source).decode(b"", 1).data == {"n": None, "d": "1970-01-01T00:00:00.000Z"}


def test_dialect_detection_and_override() -> None:
    assert detect_dialect({"decodeUplink", "decode"}) is Dialect.TTN
    assert detect_dialect({"Decode"}) is Dialect.CHIRPSTACK_V3
    assert detect_dialect({"decode"}) is Dialect.OS2IOT
    assert detect_dialect({"helper"}) is None
    with pytest.raises(JsCompileError, match="defines none of"):
        JsCodec("function helper() {}")
    with pytest.raises(JsCompileError, match="must define Decode"):
        JsCodec("function decodeUplink(i) { return { data: {} }; }", dialect=Dialect.CHIRPSTACK_V3)
    with pytest.raises(JsCompileError, match="unknown dialect"):
        JsCodec("function decodeUplink(i) { return { data: {} }; }", dialect="sigfox")


def test_script_semantics_codecs_rely_on() -> None:
    source = r"""
    'not strict';
    const helper = (b) => b[0] + 010;                      // legacy octal: sloppy script
    let decodeUplink = function (input) {                  // top-level let/const entry points are found
      return { data: { v: helper(input.bytes), self: this === globalThis, mod: typeof module } };
    };
    if (typeof module !== 'undefined') { module.exports = { decodeUplink: decodeUplink }; }
    var topThis = this === globalThis;
    """
    codec = JsCodec(source)
    assert codec.decode(b"\x02", 1).data == {"v": 10, "self": True, "mod": "undefined"}


def test_each_thread_gets_its_own_context() -> None:
    codec = JsCodec(TTN)
    results: list[Any] = []
    worker = threading.Thread(target=lambda: results.append(codec.decode(bytes.fromhex("0117"), 1).data["temperature"]))
    worker.start()
    worker.join()
    assert results == [27.9]
    assert codec.stats.contexts_built == 2
    engine = Engine(TTN, Limits())
    errors: list[BaseException] = []

    def misuse() -> None:
        try:
            engine.call('{"fn": "decodeUplink", "args": [{"bytes": [], "fPort": 1}]}')
        except RuntimeError as exc:
            errors.append(exc)

    other = threading.Thread(target=misuse)
    other.start()
    other.join()
    assert len(errors) == 1 and "thread" in str(errors[0])


def test_a_codec_serves_as_a_catalog_decoder(ttn: JsCodec) -> None:
    device = DeviceType("js-demo", "Demo", "T1", "a JavaScript demo sensor")
    examples = [
        CodecExample("warm", "decodeUplink", {"fPort": 1, "bytes": [1, 23]}, {"data": {"temperature": 27.9}}),
        CodecExample("port", "decodeUplink", {"fPort": 9, "bytes": [1]}, {"errors": ["unknown FPort"]}),
        CodecExample("led", "encodeDownlink", {"data": {"led": "green"}}, {"bytes": [1], "fPort": 2}),
    ]
    decoder = as_decoder(ttn, device, examples, measurements=("temperature",))
    assert [e.payload_hex for e in decoder.examples] == ["0117", "01"]
    assert decoder.examples[1].errors == ("unknown FPort",)
    assert decoder.decode(bytes.fromhex("0117"), 1).data["temperature"] == 27.9
    measurements, error = decoder.normalize({"temperature": 27.9})
    assert error is None and [(m.name, m.value) for m in measurements] == [("temperature", 27.9)]


def test_a_lone_surrogate_in_the_result_becomes_a_replacement_character_not_an_error() -> None:
    codec = JsCodec("function decodeUplink(input) { return {data: {lone: '\\ud800', t: input.bytes[0]}}; }")
    result = codec.decode(b"\x07", 1)
    assert result.ok and result.data == {"lone": "\ufffd", "t": 7}
