"""Issue 15, item 5: a codec that only defines The Things Network v2's ``Decoder(bytes, port)`` (and
``Encoder(object, port)``) runs as The Things Stack runs it, ``{data: Decoder(bytes, fPort)}``, instead of
being refused for lacking ``decodeUplink``; its repository examples pass through the same fallback."""

from __future__ import annotations

from pathlib import Path

import pytest

from decoders.js import JsCodec
from decoders.js.dialects import Dialect
from decoders.js.examples import CodecExample, run_examples
from decoders.js.trial import try_codec
from tests.decoders.test_import_cli import iotd
from tests.decoders.test_js_import import write

V2 = """
function Decoder(bytes, port) {
  if (port !== 1) return null;
  return { temperature: ((bytes[0] << 8) | bytes[1]) / 100, port: port, recv: typeof recvTime };
}
function Encoder(object, port) { return [object.interval & 0xff, port]; }
"""


def test_a_v2_decoder_is_called_with_bytes_and_port_and_its_object_is_the_data() -> None:
    codec = JsCodec(V2)  # refused before: "the codec defines none of decodeUplink(), Decode() or decode()"
    assert codec.dialect is Dialect.TTN and codec.uplink_function == "Decoder"
    result = codec.decode(bytes([0x09, 0xC4]), 1)
    assert result.ok, result.errors
    assert result.data == {"temperature": 25.0, "port": 1, "recv": "undefined"}
    assert codec.decode(b"\x00", 2).errors == ["Decoder() returned null, not an object"]
    assert JsCodec(V2, dialect="ttn").decode(bytes([0, 100]), 1).data["temperature"] == 1


def test_a_v2_encoder_gives_the_bytes_and_the_callers_port() -> None:
    encoded = JsCodec(V2).encode_downlink({"interval": 300}, fport=7)
    assert encoded.ok and (encoded.payload, encoded.fport) == (bytes([300 & 0xFF, 7]), 7)


def test_decode_uplink_wins_over_a_v2_decoder_defined_beside_it() -> None:
    both = JsCodec(V2 + "function decodeUplink(input) { return { data: { new: true } }; }")
    assert both.uplink_function == "decodeUplink" and both.decode(b"\x00\x01", 1).data == {"new": True}


def test_chirpstack_v4_does_not_fall_back_to_decoder() -> None:
    with pytest.raises(ValueError, match="must define decodeUplink"):
        JsCodec(V2, dialect="chirpstack-v4")


def test_the_cli_trial_runs_a_v2_decoder() -> None:
    out = try_codec(V2, None, 100, bytes([0x09, 0xC4]), 1, {})
    assert out["errors"] == [] and out["data"]["temperature"] == 25.0
    assert {"name": "temperature", "unit": "Cel", "value": 25.0} in out["measurements"]


def test_repository_examples_of_a_v2_codec_run_through_the_fallback() -> None:
    examples = [
        CodecExample.from_mapping({"description": "25 C", "input": {"fPort": 1, "bytes": [9, 196]},
                                   "output": {"data": {"temperature": 25, "port": 1, "recv": "undefined"}}}),
        CodecExample.from_mapping({"description": "wrong", "input": {"fPort": 1, "bytes": [9, 196]},
                                   "output": {"data": {"temperature": 26, "port": 1, "recv": "undefined"}}}),
        CodecExample.from_mapping({"description": "5 min", "input": {"fPort": 3, "data": {"interval": 5}},
                                   "output": {"bytes": [5, 3], "fPort": 3}}, "encodeDownlink"),
    ]
    outcomes = run_examples(JsCodec(V2), examples)
    assert [(o.passed, o.message) for o in outcomes] == [
        (True, ""), (False, "$.data.temperature: expected 26, got 25"), (True, "")]


def test_import_ttn_passes_a_v2_codec(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    root = write(tmp_path, {
        "vendor/index.yaml": "vendors:\n  - id: old\n    name: Old Sensors\n",
        "vendor/old/index.yaml": "endDevices:\n  - thermo\n",
        "vendor/old/thermo.yaml": "name: Thermo\nfirmwareVersions:\n  - version: '1'\n    profiles:\n"
                                  "      EU863-870: {id: p, codec: thermo-codec}\n",
        "vendor/old/thermo-codec.yaml": "uplinkDecoder:\n  fileName: thermo.js\n  examples:\n"
                                        "    - description: 25 C\n      input: {fPort: 1, bytes: [9, 196]}\n"
                                        "      output: {data: {temperature: 25, port: 1, recv: 'undefined'}}\n",
        "vendor/old/thermo.js": V2,
    })
    done = iotd("decoders", "import-ttn", str(root), "--dry-run", "--strict")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS ttn:old/thermo-codec (1 passed, 0 failed)" in done.stdout
