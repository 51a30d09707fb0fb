"""`iotd serve --api-only` / `--distributor-only` and `iotd admin create-key`, on real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator

import httpx
import pytest

from distributor.service import Service
from distributor.settings import Settings
from registry.secrets import hash_token
from tests.support.database import create_database, drop_database
from tests.support.scenario import SECRET_KEY


@pytest.fixture
async def db() -> AsyncIterator[str]:
    url = await create_database("iotd_modes")
    yield url
    await drop_database(url)


def create_key(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IOTD_DATABASE_URL": url}
    return subprocess.run([sys.executable, "-m", "distributor.cli", "admin", "create-key", *args],
                          capture_output=True, text=True, env=env, timeout=60)


def service(url: str, **flags: bool) -> Service:
    return Service(Settings(database_url=url, mqtt_url=None, http_port=0, http_host="127.0.0.1",
                            secret_key=SECRET_KEY, **flags))


async def test_create_key_prints_a_working_global_key_once(db: str) -> None:
    done = create_key(db, "--global", "--name", "first")
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    assert key.startswith("iotd_ak_") and "\n" not in key
    api = service(db, run_distributor=False)
    await api.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api.http_port}") as client:
            r = await client.post("/api/v1/organizations", json={"name": "x"},
                                  headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 201
            org = r.json()["id"]
            log = await client.get("/api/v1/audit-log", params={"resource": "api_key"},
                                   headers={"Authorization": f"Bearer {key}"})
            assert log.json()["items"][0]["actor"] == "cli" and key not in log.text
    finally:
        await api.stop()
    scoped = create_key(db, "--organization", org, "--role", "read")
    assert scoped.returncode == 0 and scoped.stdout.startswith("iotd_ak_")
    missing = create_key(db, "--organization", "00000000-0000-0000-0000-000000000000")
    assert missing.returncode != 0 and "organization not found" in missing.stderr


async def test_an_api_only_instance_takes_no_data_and_a_distributor_only_one_has_no_api(db: str) -> None:
    api_only, dist_only = service(db, run_distributor=False), service(db, run_api=False)
    await api_only.start()
    await dist_only.start()
    try:
        async with httpx.AsyncClient() as client:
            ingest = f"http://127.0.0.1:{api_only.http_port}/ingest/http"
            r = await client.post(ingest, content=b"{}")
            assert r.status_code == 401          # authenticated before anything else, even here
            assert api_only.pool is not None     # a device with a known ingest key, then the real answer
            org = await api_only.pool.fetchval("INSERT INTO organizations (name) VALUES ('m') RETURNING id")
            app = await api_only.pool.fetchval("INSERT INTO applications (organization_id, name) VALUES ($1, 'a')"
                                               " RETURNING id", org)
            await api_only.pool.execute("INSERT INTO devices (application_id, name, kind, ingest_key_hash)"
                                        " VALUES ($1, 'd', 'http', $2)", app, hash_token("iotd_ik_modes"))
            async with asyncio.timeout(5):
                while hash_token("iotd_ik_modes") not in api_only.cache.snapshot.by_ingest_key:
                    await asyncio.sleep(0.02)
            r = await client.post(ingest, content=b"{}", headers={"X-API-Key": "iotd_ik_modes"})
            assert r.status_code == 503 and "only the API" in r.json()["error"]
            assert api_only.pipeline is None and api_only.source is None
            r = await client.get(f"http://127.0.0.1:{dist_only.http_port}/api/v1/organizations")
            assert r.status_code == 404
            r = await client.get(f"http://127.0.0.1:{dist_only.http_port}/readyz")
            assert r.status_code == 200
    finally:
        await dist_only.stop()
        await api_only.stop()


async def test_check_says_ready_or_not(db: str) -> None:
    running = service(db, run_api=False)
    await running.start()
    try:
        ok = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "distributor.cli", "check", "--url",
                                                      f"http://127.0.0.1:{running.http_port}"],
                                     capture_output=True, text=True, timeout=30)
        assert ok.returncode == 0 and "database: ok" in ok.stdout
    finally:
        await running.stop()
    down = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "distributor.cli", "check", "--url",
                                                    f"http://127.0.0.1:{running.http_port}", "--timeout", "2"],
                                   capture_output=True, text=True, timeout=30)
    assert down.returncode == 1 and "does not answer" in down.stdout
