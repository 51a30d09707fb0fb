"""Database connection pool and numbered SQL migrations applied at start-up.

Migrations are ``registry/migrations/NNNN_name.sql``, applied in order, each in its own
transaction, under an advisory lock so several instances starting together apply each once.
"""

from __future__ import annotations

import re
from importlib import resources

import asyncpg
import orjson

from registry.storable import json_bytes

MIGRATION_LOCK = 7_240_001  # pg_advisory_lock key for migrations
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every migration, in order."""
    found = []
    for entry in resources.files("registry.migrations").iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append((int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply pending migrations; returns the names applied (empty when up to date)."""
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, name, sql in migration_files():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name)
            applied.append(name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
    return applied


def _encode_jsonb(value: object) -> bytes:
    """jsonb binary format: version byte 1, then the JSON text, with NUL and lone surrogates made storable
    (``registry.storable``), so no value from outside can make a whole batch fail."""
    return b"\x01" + json_bytes(value)


def _decode_jsonb(data: bytes) -> object:
    return orjson.loads(data[1:])


async def _init_connection(conn: asyncpg.Connection) -> None:
    """json/jsonb as Python objects through orjson, in binary format so COPY can carry them too."""
    await conn.set_type_codec("jsonb", encoder=_encode_jsonb, decoder=_decode_jsonb, schema="pg_catalog",
                              format="binary")
    await conn.set_type_codec("json", encoder=json_bytes, decoder=orjson.loads, schema="pg_catalog",
                              format="binary")


async def create_pool(url: str, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections speak json/jsonb as Python objects (orjson)."""
    pool: asyncpg.Pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size,
                                                   init=_init_connection)
    return pool
