"""The console tests' running service: the whole service (API and console) and a fresh database per test
module (``iotd_console_<module>``), as the registry tests have it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.api import Api, running_api
from tests.support.database import create_database, drop_database


@pytest.fixture(scope="module")
async def api(request: pytest.FixtureRequest) -> AsyncIterator[Api]:
    url = await create_database("iotd_console_" + request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_"))
    async with running_api(url) as running:
        yield running
    await drop_database(url)
