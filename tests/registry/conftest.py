"""The registry tests' running API: one service and a fresh database per test module (``iotd_<module>``).
A module that needs other settings defines its own ``api`` fixture."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.api import Api, module_api


@pytest.fixture(scope="module")
async def api(request: pytest.FixtureRequest) -> AsyncIterator[Api]:
    async for running in module_api(request, "iotd_"):
        yield running
