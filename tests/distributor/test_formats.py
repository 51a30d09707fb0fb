"""Output formats, as tables."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from distributor.formats import join_batch, render, senml_pack


def message(measurements: list[dict[str, Any]], dev_eui: str | None = "a81758fffe0312ab") -> dict[str, Any]:
    return {
        "schema": "iotd.message/1", "id": "m1", "received_at": "2026-11-22T10:00:00.500Z",
        "measured_at": "2026-11-22T10:00:00Z",
        "device": {"id": "d1"}, "network": {"kind": "lorawan", "dev_eui": dev_eui},
        "payload": {"raw": "AQ==", "decoded": {}}, "measurements": measurements,
    }


def test_senml_pack_has_base_name_time_and_units() -> None:
    pack = senml_pack(message([{"name": "temperature", "unit": "Cel", "value": 27.9},
                               {"name": "door_open", "unit": "/", "value": True}]))
    assert pack[0] == {"bn": "urn:dev:deveui:a81758fffe0312ab:", "bt": 1795341600.0,
                       "n": "temperature", "u": "Cel", "v": 27.9}
    assert pack[1] == {"n": "door_open", "u": "/", "vb": True}


def test_senml_names_the_device_beside_the_base_name() -> None:
    msg = message([{"name": "co2", "unit": "ppm", "value": 612}])
    msg["device"]["name"] = "classroom-1.12"
    pack = orjson.loads(render("senml", msg, None))
    assert pack[0]["bn"] == "urn:dev:deveui:a81758fffe0312ab:"   # the URN stays the identity (RFC 8428)
    assert pack[0]["device_name"] == "classroom-1.12"
    assert not any(key.endswith("_") for record in pack for key in record)   # never a must-understand field
    batch = orjson.loads(join_batch("senml", [render("senml", msg, None), render("senml", msg, None)]))
    assert [r.get("device_name") for r in batch] == ["classroom-1.12", "classroom-1.12"]


def test_senml_without_measurements_carries_the_raw_payload() -> None:
    pack = senml_pack(message([], dev_eui=None))
    assert pack == [{"bn": "urn:dev:id:d1:", "bt": 1795341600.0, "n": "payload", "vd": "AQ=="}]


@pytest.mark.parametrize(("fmt", "raw", "expect_key"), [("native", None, "schema"), ("raw", {"fCnt": 1}, "fCnt"),
                                                         ("raw", None, "schema")])
def test_render_native_and_raw(fmt: str, raw: dict[str, Any] | None, expect_key: str) -> None:
    assert expect_key in orjson.loads(render(fmt, message([]), raw))


def test_join_batch() -> None:
    a, b = render("senml", message([{"name": "co2", "unit": "ppm", "value": 400}]), None), render(
        "senml", message([{"name": "co2", "unit": "ppm", "value": 500}]), None)
    joined = orjson.loads(join_batch("senml", [a, b]))
    assert [r["v"] for r in joined] == [400, 500]
    assert orjson.loads(join_batch("native", [b'{"a":1}', b'{"b":2}'])) == [{"a": 1}, {"b": 2}]
