"""The CLI's pure commands, run in-process."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from distributor.cli import main


def test_decode_prints_the_reference_elsys_frame(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "--decoder", "elsys", "--fport", "5", "--base64", "AQEXAjEEAIsFCAcOPQ=="]) == 0
    out = orjson.loads(capsys.readouterr().out)
    assert out["data"]["temperature"] == 27.9
    assert {"name": "humidity", "unit": "%RH", "value": 49} in out["measurements"]
    assert out["errors"] == []


def test_decode_reports_errors_with_exit_code_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "--decoder", "elsys", "--hex", "99"]) == 1
    out = orjson.loads(capsys.readouterr().out)
    assert "unknown field type 0x99" in out["errors"][0]


def test_decode_rejects_bad_hex_with_a_message() -> None:
    with pytest.raises(SystemExit, match="hex payload has 'z', which is not a hex digit"):
        main(["decode", "--decoder", "elsys", "--hex", "zz"])


def test_unknown_decoder_names_the_known_ones() -> None:
    with pytest.raises(SystemExit, match=r"known: .*elsys"):
        main(["decode", "--decoder", "nope", "--hex", "00"])


def test_schema_describes_the_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = orjson.loads(capsys.readouterr().out)
    assert schema["$id"] == "iotd.message/1"
    assert {"id", "device", "measurements", "decoder"} <= set(schema["required"])


def test_decoders_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decoders", "list", "--json"]) == 0
    rows = orjson.loads(capsys.readouterr().out)
    assert {"id": "elsys", "vendor": "Elsys"}.items() <= next(r for r in rows if r["id"] == "elsys").items()


def test_decode_runs_a_javascript_file_in_the_sandbox(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    codec = tmp_path / "codec.js"
    codec.write_text("function Decode(fPort, bytes, variables) { return {temperature: bytes[0] / 2, port: fPort}; }")
    assert main(["decode", "--js", str(codec), "--fport", "3", "--hex", "2b"]) == 0
    out = orjson.loads(capsys.readouterr().out)
    assert out["data"] == {"temperature": 21.5, "port": 3}
    assert out["measurements"] == [{"name": "temperature", "unit": "Cel", "value": 21.5}]
    codec.write_text("function decodeUplink(input) { while (true) {} }")
    assert main(["decode", "--js", str(codec), "--timeout-ms", "20", "--hex", "00"]) == 1
    assert "timed out" in orjson.loads(capsys.readouterr().out)["errors"][0]


def test_a_reader_that_stops_early_gets_no_traceback() -> None:
    # `iotd decoders list | head -1`: the pipe closes before everything is written
    import os
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "distributor.cli", "decoders", "list"], stdout=write_end,
                              stderr=subprocess.PIPE, timeout=60)
    finally:
        os.close(write_end)
    assert done.returncode == 0 and done.stderr == b""
