"""Issue 15, item 6: the importer compares numbers within a tolerance (a 1e-14 difference is the engine,
not the codec), counts a ``normalizedOutput`` mismatch apart as a warning instead of failing the codec,
and calls a codec without examples UNTESTED (not "PASS 0/0"); ``--strict`` refuses untested codecs."""

from __future__ import annotations

from pathlib import Path

import pytest

from decoders.js.examples import first_difference
from tests.decoders.test_import_cli import iotd
from tests.decoders.test_js_import import write

CODEC_JS = """
function decodeUplink(input) { return { data: { ratio: 0.1 + 0.2, level: input.bytes[0] } }; }
function normalizeUplink(input) { return { data: { air: { temperature: input.data.level } } }; }
"""
DEVICE = ("name: {name}\nfirmwareVersions:\n  - version: '1'\n    profiles:\n"
          "      EU863-870: {{id: p, codec: {codec}}}\n")
CLOSE = """uplinkDecoder:
  fileName: codec.js
  examples:
    - description: ratio differs from 0.3 in the 17th digit
      input: {fPort: 1, bytes: [20]}
      output: {data: {ratio: 0.3, level: 20}}
"""
NORMALIZED_OFF = """uplinkDecoder:
  fileName: codec.js
  examples:
    - description: decoded right, normalized wrong
      input: {fPort: 1, bytes: [20]}
      output: {data: {ratio: 0.30000000000000004, level: 20}}
      normalizedOutput: {data: [{air: {temperature: 21}}]}
"""
NONE = "uplinkDecoder:\n  fileName: codec.js\n"


@pytest.mark.parametrize(("expected", "actual", "same"), [
    (0.3, 0.1 + 0.2, True),
    (1e-14, 0.0, True),
    (21.5, 21.5000001, False),          # a real difference (1e-7 relative) still fails
    (2**60, 2**60 + 1, False),          # integers compare exactly
    (True, 1, False),
])
def test_numbers_compare_within_a_tolerance(expected: object, actual: object, same: bool) -> None:
    assert (first_difference(expected, actual) is None) is same


def repository(root: Path) -> Path:
    files = {"vendor/index.yaml": "vendors:\n  - id: acme\n    name: ACME\n",
             "vendor/acme/index.yaml": "endDevices:\n  - close\n  - normalized\n  - none\n",
             "vendor/acme/codec.js": CODEC_JS}
    for name, codec_yaml in (("close", CLOSE), ("normalized", NORMALIZED_OFF), ("none", NONE)):
        files[f"vendor/acme/{name}.yaml"] = DEVICE.format(name=name, codec=f"{name}-codec")
        files[f"vendor/acme/{name}-codec.yaml"] = codec_yaml
    return write(root, files)


def test_the_report_tells_pass_warning_and_untested_apart(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    root = repository(tmp_path)
    done = iotd("decoders", "import-ttn", str(root), "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "PASS ttn:acme/close-codec (1 passed, 0 failed)" in lines
    assert "PASS ttn:acme/normalized-codec (1 passed, 0 failed; 1 normalizedOutput mismatches)" in lines
    assert ("     warning: normalizeUplink decoded right, normalized wrong: $.data[0].air.temperature: "
            "expected 21, got 20") in lines
    assert "UNTESTED ttn:acme/none-codec (no examples: it compiles, its output is unchecked)" in lines
    assert ("3 codecs: 2 pass their examples, 0 do not, 1 have none (untested); "
            "1 with normalizedOutput mismatches (warnings)") in lines
    assert "dry run: would register 3 decoders" in lines

    strict = iotd("decoders", "import-ttn", str(root), "--dry-run", "--strict")
    assert strict.returncode == 1
    assert "--strict: 1 untested codecs are not registered" in strict.stdout
    assert "dry run: would register 2 decoders" in strict.stdout
