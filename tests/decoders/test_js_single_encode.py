"""Issue 16, item 3: the decoded answer is JSON-encoded once per call, and normalizeUplink gets a parsed copy of
that text; the worker hands the receive time through as milliseconds. What the codec and the host see stays
as before: the JSON view of the data, console lines and errors kept, no state between the two functions."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from decoders.js import JsCodec, Limits
from decoders.js.worker import Codecs, decode

CODEC = """
function decodeUplink(input) {
  console.log('decoding', input.bytes.length);
  return { data: { t: input.bytes[0], when: new Date(Date.UTC(2024, 0, 2)), skip: undefined,
                   nested: { v: input.bytes[1] } }, warnings: ['w1'] };
}
function normalizeUplink(input) {
  var kinds = { when: typeof input.data.when, skip: 'skip' in input.data };
  input.data.nested.v = 999;   // its own copy: the decoded answer must not change
  return { data: { air: { temperature: input.data.t } }, warnings: [JSON.stringify(kinds)] };
}
"""


def test_normalize_sees_the_json_view_and_cannot_change_the_decoded_answer() -> None:
    codec = JsCodec(CODEC)
    result, normalized = codec.decode_normalized(b"\x15\x07", 1, recv_time=datetime(2024, 5, 1, tzinfo=UTC))
    assert result.ok
    assert result.data == {"t": 21, "when": "2024-01-02T00:00:00.000Z", "nested": {"v": 7}}
    assert result.warnings == ["w1"]
    assert normalized is not None and normalized.ok
    assert normalized.data == [{"air": {"temperature": 21}}]
    assert normalized.warnings == ['{"when":"string","skip":false}']


def test_console_lines_survive_the_spliced_envelope() -> None:
    codec = JsCodec(CODEC, limits=Limits(capture_console=True))
    result, normalized = codec.decode_normalized(b"\x01\x02", 1)
    assert result.ok and normalized is not None
    assert "console: decoding 2" in result.warnings


def test_an_answer_that_is_not_json_is_still_reported_as_such() -> None:
    codec = JsCodec("""
      function decodeUplink(input) { return { data: { big: 10n } }; }
      function normalizeUplink(input) { return { data: {} }; }""")
    result, normalized = codec.decode_normalized(b"\x01", 1)
    assert normalized is None
    assert result.errors and "not JSON" in result.errors[0]


def test_the_worker_gives_the_codec_the_receive_time_it_was_sent() -> None:
    source = "function decodeUplink(input) { return { data: { at: input.recvTime.toISOString() } }; }"
    request = {"op": "decode", "c": ["d", 1, None], "s": [source, "ttn", 100], "p": base64.b64encode(b"\x01").decode(),
               "f": 1, "v": {}, "t": 1_714_557_600_123}
    assert decode(Codecs(), request)["d"] == {"at": "2024-05-01T10:00:00.123Z"}


def test_an_os2iot_decoder_still_gets_its_event_time_from_milliseconds() -> None:
    source = "function decode(payload, metadata) { return { at: payload.time, n: payload.data }; }"
    request = {"op": "decode", "c": ["o", 1, None], "s": [source, "os2iot", 100],
               "p": base64.b64encode(b"\x01").decode(), "f": 1, "v": {}, "t": 1_714_557_600_000}
    answer = decode(Codecs(), request)
    assert answer["e"] == [] and answer["d"] == {"at": "2024-05-01T10:00:00+00:00", "n": "AQ=="}
