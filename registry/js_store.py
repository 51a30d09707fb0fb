"""Storing JavaScript decoders: the one place that checks a codec compiles and runs its examples
before it is saved, used by the API and by the repository importers of the CLI."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from decoders import catalog
from decoders.js import JsCodec, JsCompileError, Limits
from decoders.js.examples import CodecExample, run_examples
from registry.store import RegistryError

_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,79}$")


@dataclass(frozen=True, slots=True)
class Checked:
    """A codec that compiles, its dialect, and how its examples fared."""

    dialect: str
    passed: int
    failures: tuple[str, ...]


def slug(text: str, limit: int = 80) -> str:
    """A decoder id from free text: lower case, digits and dashes."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return cleaned[:limit].rstrip("-") or "decoder"


def check_id(decoder_id: str) -> None:
    if not _ID.match(decoder_id):
        raise RegistryError("a decoder id is 1-80 lower-case letters, digits and dashes, starting with one of the "
                            f"first two, got {decoder_id!r}")
    if catalog.get(decoder_id) is not None:
        raise RegistryError(f"{decoder_id!r} is a built-in decoder; choose another id")


def check_codec(source: str, dialect: str | None, timeout_ms: int,
                examples: Sequence[CodecExample] = ()) -> Checked:
    """Compile and run the examples; RegistryError (with the line) when the code does not compile."""
    try:
        codec = JsCodec(source, dialect=dialect, limits=Limits(time_ms=timeout_ms))
    except JsCompileError as exc:
        raise RegistryError(f"the decoder does not compile: {exc}") from None
    except ValueError as exc:
        raise RegistryError(str(exc)) from None
    outcomes = run_examples(codec, examples)
    failures = tuple(f"{o.example.description or 'example'}: {o.message}" for o in outcomes if not o.passed)
    return Checked(str(codec.dialect), sum(o.passed for o in outcomes), failures)


def examples_from(raw: Sequence[Any]) -> list[CodecExample]:
    """TTN-style examples (``{description, input: {fPort, bytes}, output: {data | errors}}``)."""
    out = []
    for i, item in enumerate(raw):
        try:
            out.append(CodecExample.from_mapping(item, str(item.get("routine", "decodeUplink"))))
        except (ValueError, AttributeError) as exc:
            raise RegistryError(f"example {i + 1}: {exc}") from None
    return out


async def upsert(conn: asyncpg.Connection, *, decoder_id: str, organization_id: str | None, source: str,
                 dialect: str, examples: Sequence[Any], timeout_ms: int = 100, vendor: str = "", model: str = "",
                 description: str = "", origin: str = "api") -> tuple[bool, int]:
    """Insert or replace (same owner only); returns (created, version). RegistryError when another owner has it."""
    row = await conn.fetchrow("SELECT organization_id, version, source, dialect FROM js_decoders WHERE id = $1"
                              " FOR UPDATE", decoder_id)
    if row is None:
        await conn.execute(
            "INSERT INTO js_decoders (id, organization_id, vendor, model, description, dialect, source, examples,"
            " timeout_ms, origin) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            decoder_id, organization_id, vendor, model, description, dialect, source, list(examples), timeout_ms,
            origin)
        return True, 1
    owner = str(row["organization_id"]) if row["organization_id"] is not None else None
    if owner != organization_id:
        raise RegistryError(f"the decoder id {decoder_id!r} is taken")
    if row["source"] == source and row["dialect"] == dialect:
        return False, int(row["version"])
    version = await conn.fetchval(
        "UPDATE js_decoders SET vendor = $2, model = $3, description = $4, dialect = $5, source = $6, examples = $7,"
        " timeout_ms = $8, origin = $9, version = version + 1, updated_at = now() WHERE id = $1 RETURNING version",
        decoder_id, vendor, model, description, dialect, source, list(examples), timeout_ms, origin)
    return False, int(version)
