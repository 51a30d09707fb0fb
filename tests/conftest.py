"""Session-wide real services: a private Mosquitto and a fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from registry.db import create_pool, migrate
from tests.support.broker import MosquittoBroker
from tests.support.database import create_database, drop_database


@pytest.fixture(scope="session")
def broker() -> Iterator[MosquittoBroker]:
    b = MosquittoBroker()
    b.start()
    yield b
    b.close()


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    url = await create_database()
    yield url
    await drop_database(url)


@pytest.fixture
async def migrated_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the session's database with every migration applied."""
    p = await create_pool(database_url)
    async with p.acquire() as conn:
        await migrate(conn)
    yield p
    await p.close()
