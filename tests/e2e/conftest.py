"""Fixtures of the end-to-end tests: a broker and a database of a test's own, for scenarios that restart,
kill or fill them (the session-wide ``broker`` of ``tests/conftest.py`` is shared by the quiet tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.broker import MosquittoBroker
from tests.support.database import create_database, drop_database


@pytest.fixture
async def own_broker() -> AsyncIterator[MosquittoBroker]:
    b = MosquittoBroker()
    b.start()
    yield b
    b.close()


@pytest.fixture
async def db(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh database named after the test module (``iotd_<module>``)."""
    url = await create_database("iotd_" + request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_"))
    yield url
    await drop_database(url)
