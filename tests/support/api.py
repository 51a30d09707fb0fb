"""The service with its REST API on a free port, a first global admin key, and an HTTP client for it."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from distributor.service import Service
from distributor.settings import Settings
from registry.api.keys import create_first_key
from registry.db import create_pool, migrate
from tests.support.broker import MosquittoBroker
from tests.support.database import create_database, drop_database
from tests.support.scenario import LOOPBACK, SECRET_KEY


@dataclass
class Api:
    service: Service
    client: httpx.AsyncClient        # authenticated with the global admin key
    base_url: str
    admin_key: str

    def as_key(self, key: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=10)

    async def create(self, path: str, body: dict[str, Any], client: httpx.AsyncClient | None = None
                     ) -> dict[str, Any]:
        r = await (client or self.client).post(f"/api/v1/{path}", json=body)
        assert r.status_code == 201, (path, r.status_code, r.text)
        out: dict[str, Any] = r.json()
        return out


async def first_key(database_url: str) -> str:
    pool = await create_pool(database_url)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            return await create_first_key(conn, "test admin")
    finally:
        await pool.close()


@contextlib.asynccontextmanager
async def running_api(database_url: str, broker: MosquittoBroker | None = None, **overrides: Any
                      ) -> AsyncIterator[Api]:
    """The whole service (with the MQTT source when ``broker`` is given) and a global admin client.

    Consumers may reach loopback (the tests' receivers); override ``consumer_allowed_networks`` to test refusals.
    """
    values: dict[str, Any] = {"database_url": database_url, "mqtt_url": broker.url if broker else None,
                              "http_port": 0, "http_host": "127.0.0.1", "secret_key": SECRET_KEY,
                              "consumer_allowed_networks": LOOPBACK,
                              "mqtt_client_id": f"iotd-{uuid.uuid4().hex[:8]}", **overrides}
    key = await first_key(database_url)
    service = Service(Settings(**values))
    await service.start()
    base = f"http://127.0.0.1:{service.http_port}"
    try:
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=10) as c:
            yield Api(service, c, base, key)
    finally:
        await service.stop()


async def module_api(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[Api]:
    """The running service on a fresh database named after the test module (``<prefix><module>``), for a
    module-scoped ``api`` fixture."""
    url = await create_database(prefix + request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_"))
    async with running_api(url) as running:
        yield running
    await drop_database(url)
