"""The CLI's pure commands, run in-process."""

from __future__ import annotations

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
    with pytest.raises(SystemExit, match="not valid hex"):
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
