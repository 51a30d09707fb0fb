"""Importers read both public device-repository layouts; the report names each failing example."""

from __future__ import annotations

from pathlib import Path

import pytest

from decoders.js.chirpstack_repository import parse_js_literal, scan_chirpstack_repository
from decoders.js.dialects import Dialect
from decoders.js.spec import run_codec_examples
from decoders.js.ttn_repository import scan_ttn_repository

WIND_JS = """
var DIRECTIONS = ['N', 'E', 'S', 'W'];
function decodeUplink(input) {
  if (input.fPort !== 1) return { errors: ['unknown FPort'] };
  var speed = input.bytes[1];
  return { data: { direction: DIRECTIONS[input.bytes[0]], speed: speed, on: speed > 0 ? 'on' : 'off' } };
}
function normalizeUplink(input) { return { data: { wind: { speed: input.data.speed } } }; }
function encodeDownlink(input) {
  if (input.data.led === 'green') return { bytes: [1], fPort: 2 };
  return { errors: ['invalid LED color'] };
}
"""
WIND_CODEC_YAML = """
uplinkDecoder:
  fileName: wind.js
  examples:
    - description: 32 knots from the North
      input: {fPort: 1, bytes: [0x00, 0x20]}
      output:
        data: {direction: N, speed: 32, on: on}
      normalizedOutput:
        data: [{wind: {speed: 32}}]
    - description: wrong on purpose
      input: {fPort: 1, bytes: [1, 42]}
      output:
        data: {direction: E, speed: 41, on: on}
    - description: Unknown FPort
      input: {fPort: 42, bytes: [1, 42]}
      output:
        errors: [unknown FPort]
        warnings: []
downlinkEncoder:
  fileName: wind.js
  examples:
    - description: Turn green
      input: {data: {led: green}}
      output: {bytes: [1], fPort: 2}
"""
WIND_DEVICE_YAML = """
name: Wind Sensor
firmwareVersions:
  - version: '1.0'
    profiles:
      EU863-870: {id: wind-profile, codec: wind-codec}
      US902-928: {id: wind-profile-us, codec: wind-codec}
"""


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_ttn_repository_scan_and_report(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    root = write(
        tmp_path,
        {
            "vendor/index.yaml": "vendors:\n  - id: acme\n    name: ACME Sensors\n  - id: broken\n    name: Broken\n",
            "vendor/acme/index.yaml": "endDevices:\n  - wind\n  - wind-pro\n",
            "vendor/acme/wind.yaml": WIND_DEVICE_YAML,
            "vendor/acme/wind-pro.yaml": WIND_DEVICE_YAML.replace("Wind Sensor", "Wind Sensor Pro"),
            "vendor/acme/wind-codec.yaml": WIND_CODEC_YAML,
            "vendor/acme/wind.js": WIND_JS,
            "vendor/acme/wind-profile.yaml": "macVersion: 1.0.3\n",
            "vendor/broken/index.yaml": "endDevices: [thing]\n",
            "vendor/broken/thing.yaml": (
                "name: Thing\nfirmwareVersions:\n  - profiles: {EU863-870: {id: p, codec: thing-codec}}\n"
            ),
            "vendor/broken/thing-codec.yaml": "uplinkDecoder:\n  fileName: missing.js\n",
        },
    )
    specs = scan_ttn_repository(root)
    assert [s.key for s in specs] == ["ttn:acme/wind-codec", "ttn:broken/thing-codec"]
    wind, thing = specs
    assert (wind.vendor_name, wind.devices, wind.dialect) == (
        "ACME Sensors",
        ("Wind Sensor", "Wind Sensor Pro"),
        Dialect.TTN,
    )
    assert [e.routine for e in wind.examples] == ["decodeUplink"] * 3 + ["encodeDownlink"]
    assert wind.examples[0].input == {"fPort": 1, "bytes": [0, 32]}  # YAML hex bytes, and 'on' stays a string
    assert thing.problem is not None and "missing.js" in thing.problem

    report = run_codec_examples(wind)
    assert (report.passed, report.failed, report.ok) == (3, 1, False)
    assert report.messages == ("decodeUplink wrong on purpose: $.data.speed: expected 41, got 42",)
    broken = run_codec_examples(thing)
    assert (broken.passed, broken.failed) == (0, 1) and "missing.js" in broken.messages[0]


CS_CODEC = """
function decodeUplink(input) {
  var raw = Buffer.from(input.bytes);
  return { data: { co2: raw.readUInt16BE(0), unit: (input.variables || {}).unit || 'ppm' }, warnings: [] };
}
function encodeDownlink(input) { return { fPort: 3, bytes: [input.data.interval >> 8, input.data.interval & 0xff] }; }
"""
CS_DECODE_TESTS = """[
  {
    "name": "co2 reading",
    "input": { "fPort": 0x02, "bytes": [0x01, 0xf4] }, // 500 ppm
    "expected": { "data": { "co2": 500, "unit": "ppm" }, "errors": [], "warnings": [] }
  },
  {
    "name": "uses device variables",
    "input": { "fPort": 2, "bytes": [0, 1], "variables": { "unit": "ppb" } },
    "expected": { "data": { "co2": 1, "unit": "ppb" } },
  },
  {
    "name": "wrong on purpose",
    "input": { "fPort": 2, "bytes": [0, 2] },
    "expected": { "data": { "co2": 3, "unit": "ppm" } }
  }
]"""
CS_ENCODE_TESTS = (
    '[{"name": "interval", "input": {"data": {"interval": 600}}, "expected": {"fPort": 3, "bytes": [2, 88]}}]'
)


def test_chirpstack_repository_scan_and_report(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "vendors/acme/vendor.toml": '[vendor]\nid = "x"\nname = "ACME"\n',
            "vendors/acme/devices/co2.toml": (
                '[device]\nname = "CO2 Sensor"\n[[device.firmware]]\nversion = "1.0"\n'
                'profiles = ["EU868.toml"]\ncodec = "co2.js"\n'
            ),
            "vendors/acme/codecs/co2.js": CS_CODEC,
            "vendors/acme/codecs/test_decode_co2.json": CS_DECODE_TESTS,
            "vendors/acme/codecs/test_encode_co2.json": CS_ENCODE_TESTS,
            "vendors/acme/codecs/orphan.js": "function decodeUplink(input) { return { data: {} }; }",
            "vendors/acme/codecs/bad.js": "function decodeUplink(input) { return { data: {} }; }",
            "vendors/acme/codecs/test_decode_bad.json": "[{ name: 'x', input: ",
            "vendors/acme/profiles/EU868.toml": "[profile]\nregion = 'EU868'\n",
        },
    )
    specs = scan_chirpstack_repository(root)
    assert [s.key for s in specs] == ["chirpstack:acme/bad", "chirpstack:acme/co2", "chirpstack:acme/orphan"]
    bad, co2, orphan = specs
    assert (co2.vendor_name, co2.devices, co2.dialect) == ("ACME", ("CO2 Sensor",), Dialect.CHIRPSTACK_V4)
    assert [e.description for e in co2.examples] == [
        "co2 reading",
        "uses device variables",
        "wrong on purpose",
        "interval",
    ]
    assert orphan.devices == () and orphan.examples == () and orphan.problem is None
    assert bad.problem is not None and "test_decode_bad.json: SyntaxError" in bad.problem

    report = run_codec_examples(co2)
    assert (report.passed, report.failed) == (3, 1)
    assert report.messages == ("decodeUplink wrong on purpose: $.data.co2: expected 3, got 2",)
    assert run_codec_examples(orphan).ok
    assert not run_codec_examples(bad).ok


def test_js_literals_are_evaluated_in_a_sandbox() -> None:
    assert parse_js_literal("[0x10, /* c */ 'a', {b: 1,},] // end") == [16, "a", {"b": 1}]
    assert parse_js_literal("  ") == []
    with pytest.raises(ValueError, match="ReferenceError"):
        parse_js_literal("[require('fs')]")
    with pytest.raises(ValueError, match="interrupted"):
        parse_js_literal("(function () { for (;;) {} })()", time_limit_s=0.05)


def test_a_codec_that_does_not_compile_fails_all_its_examples(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "vendors/acme/codecs/x.js": "function decodeUplink(input) { return { data: { ",
            "vendors/acme/codecs/test_decode_x.json": CS_DECODE_TESTS,
        },
    )
    (spec,) = scan_chirpstack_repository(root)
    report = run_codec_examples(spec)
    assert (report.passed, report.failed) == (0, 3)
    assert report.messages[0].startswith("does not compile: SyntaxError")
