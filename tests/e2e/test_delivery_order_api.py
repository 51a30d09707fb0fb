"""``options.order`` through the consumers API: "fresh-first" or "strict" are stored, anything else is a 422
that says what to send (before, any value was stored and silently meant today's behaviour)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.api import Api, running_api
from tests.support.database import create_database, drop_database


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    url = await create_database("iotd_order")
    async with running_api(url, run_distributor=False) as a:
        yield a
    await drop_database(url)


async def test_the_delivery_order_is_validated(api: Api) -> None:
    org = (await api.create("organizations", {"name": "order"}))["id"]
    hook = {"organization_id": org, "name": "hook", "kind": "http", "url": "http://127.0.0.1:9/hook"}
    strict = await api.create("consumers", {**hook, "options": {"order": "strict", "concurrency": 1}})
    assert strict["options"] == {"order": "strict", "concurrency": 1}
    for bad in ("sideways", "STRICT", 1, None, ["strict"]):
        r = await api.client.post("/api/v1/consumers", json={**hook, "name": "bad", "options": {"order": bad}})
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["error"] == 'options: Value error, order must be "fresh-first" or "strict"'
    r = await api.client.patch(f"/api/v1/consumers/{strict['id']}", json={"options": {"order": "newest"}})
    assert r.status_code == 422
    r = await api.client.patch(f"/api/v1/consumers/{strict['id']}", json={"options": {"order": "fresh-first"}})
    assert r.status_code == 200 and r.json()["options"] == {"order": "fresh-first"}
    assert (await api.create("consumers", {**hook, "name": "default"}))["options"] == {}
