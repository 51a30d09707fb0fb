"""The console tests' running service: the whole service (API and console) and a fresh database per test
module (``iotd_console_<module>``), as the registry tests have it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.api import Api, module_api


@pytest.fixture(scope="module")
async def api(request: pytest.FixtureRequest) -> AsyncIterator[Api]:
    async for running in module_api(request, "iotd_console_"):
        yield running
