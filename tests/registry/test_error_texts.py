"""409 texts name the field, never the value, and read the same whoever holds the duplicate (issue 13, Low)."""

from __future__ import annotations

import asyncpg
import pytest

from registry.api.errors import _unique_message


def violation(detail: str) -> asyncpg.UniqueViolationError:
    exc = asyncpg.UniqueViolationError("duplicate key value violates unique constraint")
    exc.detail = detail   # what PostgreSQL says, values included
    return exc


@pytest.mark.parametrize(("detail", "text"), [
    ("Key (dev_eui)=(a000000000000001) already exists.", "dev_eui is already registered"),
    ("Key (imei)=(490154203237518) already exists.", "imei is already registered"),
    ("Key (email)=(mayor@city.dk) already exists.", "email is already registered"),
    ("Key (name)=(Aarhus) already exists.", "name is already registered"),
    ("Key (organization_id, name)=(3b1a5ad5-5a2e-4b8f-9a7c-0e3f2d1c4b5a, climate) already exists.",
     "name is already registered in this organization"),
    ("Key (ingest_key_hash)=(abc) already exists.", "an object with these unique values already exists"),
    ("", "an object with these unique values already exists"),
])
def test_a_duplicate_names_its_field_and_nothing_else(detail: str, text: str) -> None:
    assert _unique_message(violation(detail)) == text
