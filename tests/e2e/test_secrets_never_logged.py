"""Secrets never reach the logs: the service runs as a real process at debug level while keys, app
keys, signing secrets, headers and URL passwords pass through the API and ingest; its log must hold none."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from distributor.settings import Settings
from tests.support.api import first_key
from tests.support.database import create_database, drop_database
from tests.support.scenario import SECRET_KEY, ServiceProcess

APP_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


@pytest.fixture
async def served() -> AsyncIterator[tuple[ServiceProcess, str]]:
    url = await create_database("iotd_logs")
    key = await first_key(url)
    proc = ServiceProcess(Settings(database_url=url, mqtt_url=None, secret_key=SECRET_KEY, http_host="127.0.0.1",
                                   log_level="debug", state_flush_interval_s=0.1))
    proc.start()
    try:
        await proc.ready()
        yield proc, key
    finally:
        proc.stop()
        await drop_database(url)


async def test_no_secret_appears_in_the_log(served: tuple[ServiceProcess, str]) -> None:
    proc, admin_key = served
    base = f"http://127.0.0.1:{proc.port}"
    secrets = [admin_key, APP_KEY, "hook-signing-secret-42", "Bearer dept-token-77", "broker-pa55"]
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {admin_key}"}) as api:
        async def create(path: str, body: dict[str, object]) -> dict[str, str]:
            r = await api.post(f"/api/v1/{path}", json=body)
            assert r.status_code == 201, r.text
            out: dict[str, str] = r.json()
            return out

        org = (await create("organizations", {"name": "logs"}))["id"]
        app = (await create("applications", {"organization_id": org, "name": "a"}))["id"]
        await create("devices", {"application_id": app, "name": "l", "kind": "lorawan", "dev_eui": "0a0b0c0d0e0f0102",
                                 "app_key": APP_KEY})
        nb = await create("devices", {"application_id": app, "name": "n", "kind": "http", "decoder": "json"})
        consumer = await create("consumers", {"organization_id": org, "name": "c", "kind": "http",
                                              "url": "http://127.0.0.1:9/nowhere", "secret": "hook-signing-secret-42",
                                              "headers": {"Authorization": "Bearer dept-token-77"}})
        await create("consumers", {"organization_id": org, "name": "m", "kind": "mqtt",
                                   "url": "mqtt://iot:broker-pa55@127.0.0.1:9/t/{device}"})
        await create("subscriptions", {"consumer_id": consumer["id"], "application_id": app})
        org_key = (await create("api-keys", {"organization_id": org, "name": "k", "role": "read"}))["key"]
        rotated = (await api.post(f"/api/v1/consumers/{consumer['id']}/rotate-secret")).json()["secret"]
        secrets += [nb["ingest_key"], org_key, rotated]
        await asyncio.sleep(1.0)  # live configuration reaches the distributor within a second
        r = await api.post("/ingest/http", params={"apiKey": nb["ingest_key"]}, content=b'{"temperature": 3}',
                           headers={"Content-Type": "application/json", "Authorization": ""})
        assert r.status_code == 202, r.text
        bad = await api.get("/api/v1/devices", headers={"Authorization": f"Bearer {org_key}x"})
        assert bad.status_code == 401
        async with asyncio.timeout(10):  # the delivery to the unreachable consumer was tried (and logged)
            while (await api.get(f"/api/v1/consumers/{consumer['id']}/delivery-log")).json()["pending"] < 1:
                await asyncio.sleep(0.1)
    proc.kill()
    await proc.wait()
    log = proc.log.read_text(errors="replace")
    assert "iotd started" in log and "delivery failed" in log   # the log did record the work
    for secret in secrets:
        assert secret not in log, "a secret reached the log"
