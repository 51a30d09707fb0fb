"""A fresh PostgreSQL database per test session on the real local server.

The server comes from IOTD_TEST_DATABASE_URL (default: postgresql://postgres@127.0.0.1:5432/postgres);
deploy/dev/services.sh installs and starts one when missing.
"""

from __future__ import annotations

import os
import uuid

import asyncpg

ADMIN_URL = os.environ.get("IOTD_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


async def create_database(prefix: str = "iotd_test") -> str:
    """Create an empty database and return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return _with_database(ADMIN_URL, name)


async def drop_database(url: str) -> None:
    name = url.rpartition("/")[2]
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
