"""Session-wide real services: a private Mosquitto and a fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

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
