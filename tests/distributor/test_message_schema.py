"""``iotd schema`` (issue 15): a JSON Schema that says its dialect and describes every field."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from distributor.cli import main
from distributor.model import JSON_SCHEMA_DIALECT, SCHEMA_ID, json_schema


def _undescribed(schema: dict[str, Any]) -> list[str]:
    """Every property, in the message and in each nested definition, that has no description."""
    objects = [("Message", schema), *schema.get("$defs", {}).items()]
    return [f"{owner}.{name}" for owner, obj in objects for name, prop in obj.get("properties", {}).items()
            if not str(prop.get("description", "")).strip()]


def test_the_schema_names_its_dialect_and_id() -> None:
    schema = json_schema()
    assert schema["$schema"] == JSON_SCHEMA_DIALECT == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_ID
    assert list(schema)[:2] == ["$schema", "$id"]


def test_every_field_has_a_description() -> None:
    schema = json_schema()
    assert _undescribed(schema) == []
    assert all(definition.get("description") for definition in schema["$defs"].values())
    device = schema["$defs"]["DeviceRef"]["properties"]
    assert {"organization_name", "application_name"} <= set(device)


def test_iotd_schema_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert orjson.loads(capsys.readouterr().out) == json_schema()
