"""Nothing is read before it is authorized, and nothing is read past its limit (issue 13, findings 2 and 11).

Real service over real HTTP on loopback, real PostgreSQL; raw sockets where the test must see what the
server does before a body arrives (a client library would send the body first).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psutil
import pytest

from distributor.demo_feed import status_event, to_json, uplink_event
from distributor.settings import Settings
from tests.support.api import Api, first_key, running_api
from tests.support.database import create_database, drop_database
from tests.support.scenario import SECRET_KEY, ServiceProcess

TOKEN = "chirpstack-global-token-for-tests-0123"
METRICS_TOKEN = "metrics-token-for-tests-0123"
TENANT = "52f14cd4-c6f1-4fbd-8f87-4025e1d49242"          # demo_feed's default tenant
OTHER_TENANT = "9d0e4c1a-3b2f-4e5d-8c7b-6a5f4e3d2c1b"
EUI = "a81758fffe0312ab"
HUNDRED_MB = 100 * 1024 * 1024


@pytest.fixture(scope="module")
async def api() -> AsyncIterator[Api]:
    url = await create_database("iotd_ingress")
    async with running_api(url, chirpstack_http_token=TOKEN, metrics_token=METRICS_TOKEN, auth_failure_limit=10_000,
                           state_flush_interval_s=0.05) as a:
        yield a
    await drop_database(url)


async def raw(port: int, head: str, timeout: float = 3.0) -> tuple[int, dict[str, str], bytes]:
    """Send ``head`` (request line and headers, no body) and read the answer: it must come without the body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.replace("\n", "\r\n").encode() + b"\r\n")
        await writer.drain()
        async with asyncio.timeout(timeout):
            status = await reader.readline()
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
    finally:
        writer.close()
    return int(status.split()[1]), headers, body


def head(method: str, path: str, *headers: str) -> str:
    return "\n".join((f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers)) + "\n"


async def device_with_key(api: Api, name: str) -> tuple[str, str]:
    org = (await api.create("organizations", {"name": name}))["id"]
    app = (await api.create("applications", {"organization_id": org, "name": "a"}))["id"]
    dev = await api.create("devices", {"application_id": app, "name": "d", "kind": "http", "decoder": "json"})
    async with asyncio.timeout(2):
        while dev["id"] not in api.service.cache.snapshot.devices:
            await asyncio.sleep(0.02)
    return dev["id"], dev["ingest_key"]


def chirpstack(api: Api, token: str | None = TOKEN) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=api.base_url, headers=headers, timeout=10)


def up(f_cnt: int, tenant: str = TENANT, dev_eui: str = EUI) -> bytes:
    return to_json(uplink_event(dev_eui=dev_eui, data=b"\x01\x00\xe2", f_cnt=f_cnt, tenant_id=tenant))


# --- finding 2: the ChirpStack HTTP integration -----------------------------------------------------------------
async def test_chirpstack_ingest_needs_the_token(api: Api) -> None:
    async with chirpstack(api, None) as anonymous, chirpstack(api, "wrong-token") as wrong, chirpstack(api) as right:
        r = await anonymous.post("/ingest/chirpstack?event=up", content=up(1))
        assert r.status_code == 401 and "Authorization: Bearer" in r.json()["error"]
        assert (await wrong.post("/ingest/chirpstack?event=up", content=up(2))).status_code == 401
        r = await right.post("/ingest/chirpstack?event=up", content=up(3), headers={"content-type": "application/json"})
        assert r.status_code == 200, r.text


async def test_no_token_configured_refuses_everything_and_says_how_to_configure_one() -> None:
    url = await create_database("iotd_notoken")
    try:
        async with running_api(url) as api, chirpstack(api, "anything") as client:
            r = await client.post("/ingest/chirpstack?event=up", content=up(1))
            assert r.status_code == 401
            assert "IOTD_CHIRPSTACK_HTTP_TOKEN" in r.json()["error"]
            assert "create-integration-token" in r.json()["error"]
    finally:
        await drop_database(url)


async def test_unknown_events_are_refused_naming_the_allowed_ones(api: Api) -> None:
    async with chirpstack(api) as client:
        r = await client.post("/ingest/chirpstack?event=../../etc", content=up(4))
        assert r.status_code == 400
        assert "up, join, status, log, ack, txack, location, integration" in r.json()["error"]
        ok = await client.post("/ingest/chirpstack?event=status", content=to_json(status_event(EUI)))
        assert ok.status_code == 200, ok.text


async def test_a_token_bound_to_a_tenant_refuses_other_tenants_events_and_revocation_is_immediate(api: Api) -> None:
    created = await api.create("integration-tokens", {"name": "city ChirpStack", "chirpstack_tenant_id": TENANT})
    assert created["token"].startswith("iotd_it_") and created["chirpstack_tenant_id"] == TENANT
    async with chirpstack(api, created["token"]) as client:      # usable as soon as it is created
        assert (await client.post("/ingest/chirpstack?event=up", content=up(5))).status_code == 200
        r = await client.post("/ingest/chirpstack?event=up", content=up(6, tenant=OTHER_TENANT))
        assert r.status_code == 403 and "tenant" in r.json()["error"]
        revoked = await api.client.post(f"/api/v1/integration-tokens/{created['id']}/revoke")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]
        # no waiting: once the API said it is revoked, this instance refuses it
        assert (await client.post("/ingest/chirpstack?event=up", content=up(7))).status_code == 401
    listed = (await api.client.get("/api/v1/integration-tokens")).json()
    assert [t["name"] for t in listed["items"]] == ["city ChirpStack"] and "token" not in listed["items"][0]
    audit = (await api.client.get("/api/v1/audit-log", params={"resource": "integration_token"})).json()["items"]
    assert [e["action"] for e in audit] == ["update", "create"]
    assert created["token"] not in str(audit)


async def test_integration_tokens_are_for_global_admins_only(api: Api) -> None:
    org = (await api.create("organizations", {"name": "tokens-org"}))["id"]
    key = (await api.create("api-keys", {"organization_id": org, "name": "k", "role": "admin"}))["key"]
    async with api.as_key(key) as org_admin:
        assert (await org_admin.post("/api/v1/integration-tokens", json={"name": "x"})).status_code == 403
        assert (await org_admin.get("/api/v1/integration-tokens")).status_code == 403


# --- finding 11: authenticate first, bound while streaming -------------------------------------------------------
@pytest.mark.parametrize(("method", "path", "auth", "status"), [
    ("POST", "/ingest/chirpstack?event=up", "", 401),
    ("POST", "/ingest/chirpstack?event=up", f"Authorization: Bearer {TOKEN}", 413),
    ("POST", "/ingest/http", "", 401),
    ("POST", "/ingest/http", "X-API-Key: iotd_ik_wrong", 401),
    ("POST", "/api/v1/devices/import", "", 401),
    ("POST", "/api/v1/devices/import", "Authorization: Bearer iotd_ak_wrong", 401),
    ("POST", "/api/v1/organizations", "Authorization: Bearer iotd_ak_wrong", 401),
    ("PATCH", "/api/v1/decoders/x", "", 401),
    ("POST", "/ingest/nowhere", "", 413),         # open paths take 1 MiB too
])
async def test_a_huge_declared_body_is_answered_before_it_is_sent(api: Api, method: str, path: str, auth: str,
                                                                  status: int) -> None:
    started = time.monotonic()
    got, headers, body = await raw(api.service.http_port, head(method, path, f"Content-Length: {HUNDRED_MB}",
                                                               "Content-Type: application/json", *filter(None, [auth])))
    assert got == status, body
    assert time.monotonic() - started < 2
    assert headers["connection"] == "close" and b'"error"' in body


async def test_authenticated_callers_are_refused_over_each_routes_limit_before_sending(api: Api) -> None:
    _, ingest_key = await device_with_key(api, "limits")
    admin = f"Authorization: Bearer {api.admin_key}"
    for path, auth, limit in (("/ingest/http", f"X-API-Key: {ingest_key}", 256 * 1024),
                              ("/ingest/chirpstack", f"Authorization: Bearer {TOKEN}", 2**20),
                              ("/api/v1/organizations", admin, 2**20), ("/api/v1/decoders/test", admin, 2 * 2**20),
                              ("/api/v1/devices/import", admin, 20 * 2**20)):
        status, _, body = await raw(api.service.http_port, head("POST", path, f"Content-Length: {limit + 1}", auth))
        assert status == 413 and b"larger than this endpoint takes" in body, (path, body)


async def test_the_api_key_is_checked_before_the_body_is_read(api: Api) -> None:
    # a small declared body that never comes: the old API read it (and hung) before looking at the key
    status, headers, body = await raw(api.service.http_port, head(
        "POST", "/api/v1/organizations", "Content-Length: 100", "Authorization: Bearer iotd_ak_guess"))
    assert status == 401 and headers["www-authenticate"] == "Bearer" and b"invalid API key" in body
    status, _, _ = await raw(api.service.http_port, head("POST", "/ingest/http", "Content-Length: 100"))
    assert status == 401


async def chunked(port: int, head_text: str, total: int, chunk: int = 64 * 1024, finish: bool = True
                  ) -> tuple[int, bytes, int]:
    """Stream ``total`` bytes chunked while watching for an answer; returns (status, answer, bytes sent before
    the server answered). Status 0: the connection was reset before the answer could be read (the server
    closed with our bytes unread, which it does when it stops reading a body it will not take).
    ``finish=False``: after ``total`` bytes, send nothing more and wait for the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = asyncio.ensure_future(reader.read(4096))
    sent = 0
    try:
        writer.write(head_text.replace("\n", "\r\n").encode() + b"Transfer-Encoding: chunked\r\n\r\n")
        while sent < total and not answer.done():
            size = min(chunk, total - sent)
            writer.write(b"%x\r\n%s\r\n" % (size, b"x" * size))
            sent += size
            await writer.drain()
        if finish and not answer.done():
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except ConnectionError:        # the server closed while we were still sending: what we expect
        pass
    try:
        data = await asyncio.wait_for(answer, 10)
    except ConnectionError:
        data = b""
    finally:
        writer.close()
    status = int(data.split()[1]) if data.startswith(b"HTTP/") else 0
    return status, data, sent


async def test_a_chunked_body_is_cut_off_at_the_limit(api: Api) -> None:
    _, ingest_key = await device_with_key(api, "chunked")
    port = api.service.http_port
    ingest = head("POST", "/ingest/http", f"X-API-Key: {ingest_key}")
    status, data, _ = await chunked(port, ingest, 256 * 1024 + 1, finish=False)   # one byte too many
    assert status == 413 and b"256 KiB" in data and b"connection: close" in data.lower(), data
    status, _, sent = await chunked(port, ingest, HUNDRED_MB)
    assert status in (0, 413) and sent < 8 * 2**20, (status, sent)   # closed long before the end
    create = head("POST", "/api/v1/organizations", f"Authorization: Bearer {api.admin_key}",
                  "Content-Type: application/json")
    status, data, _ = await chunked(port, create, 2**20 + 1, finish=False)
    assert status == 413 and b"1 MiB" in data, data


async def test_a_chunked_body_within_the_limit_still_works(api: Api) -> None:
    async with chirpstack(api) as client:
        async def body() -> AsyncIterator[bytes]:
            yield up(8)
        r = await client.post("/ingest/chirpstack?event=up", content=body())
        assert r.status_code == 200, r.text


# --- Low items ----------------------------------------------------------------------------------------------------
async def test_metrics_need_their_token_when_one_is_set(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.base_url) as client:
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers={"Authorization": "Bearer nope"})).status_code == 401
        r = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert r.status_code == 200 and "iotd_organizations_unmapped" in r.text
        assert (await client.get("/healthz")).status_code == 200


async def test_a_rotated_key_or_deleted_device_stops_working_when_the_api_answers(api: Api) -> None:
    device_id, key = await device_with_key(api, "rotation")
    async with httpx.AsyncClient(base_url=api.base_url) as device:
        assert (await device.post("/ingest/http", content=b"{}", headers={"X-API-Key": key})).status_code == 202
        rotated = (await api.client.post(f"/api/v1/devices/{device_id}/rotate-ingest-key")).json()["ingest_key"]
        assert (await device.post("/ingest/http", content=b"{}", headers={"X-API-Key": key})).status_code == 401
        assert (await device.post("/ingest/http", content=b"{}", headers={"X-API-Key": rotated})).status_code == 202
        assert (await api.client.delete(f"/api/v1/devices/{device_id}")).status_code == 204
        assert (await device.post("/ingest/http", content=b"{}", headers={"X-API-Key": rotated})).status_code == 401


async def test_read_and_write_keys_may_not_see_users(api: Api) -> None:
    org = (await api.create("organizations", {"name": "people"}))["id"]
    user = (await api.create("users", {"organization_id": org, "name": "Ann", "email": "ann@people.dk",
                                       "role": "read"}))["id"]
    for role in ("read", "write"):
        key = (await api.create("api-keys", {"organization_id": org, "name": role, "role": role}))["key"]
        async with api.as_key(key) as client:
            for path in ("/api/v1/users", f"/api/v1/users/{user}"):
                r = await client.get(path)
                assert r.status_code == 403 and "admin" in r.json()["error"] and "ann@" not in r.text
    admin = (await api.create("api-keys", {"organization_id": org, "name": "a", "role": "admin"}))["key"]
    async with api.as_key(admin) as client:
        assert (await client.get(f"/api/v1/users/{user}")).status_code == 200


async def test_wrong_keys_are_throttled_per_address_across_kinds() -> None:
    url = await create_database("iotd_throttle")
    try:
        async with running_api(url, chirpstack_http_token=TOKEN, auth_failure_limit=3) as api:
            _, ingest_key = await device_with_key(api, "throttled")
            async with httpx.AsyncClient(base_url=api.base_url) as c:
                for _ in range(5):   # no credential is no guess: never counted
                    assert (await c.get("/api/v1/devices")).status_code == 401
                wrong = [await c.get("/api/v1/devices", headers={"Authorization": "Bearer iotd_ak_1"}),
                         await c.post("/ingest/http", content=b"{}", headers={"X-API-Key": "iotd_ik_2"}),
                         await c.post("/ingest/chirpstack", content=up(1), headers={"Authorization": "Bearer guess-3"})]
                assert [r.status_code for r in wrong] == [401, 401, 401]
                # the budget is spent: right and wrong credentials alike wait, so guessing on learns nothing
                for kwargs in ({"headers": {"Authorization": f"Bearer {api.admin_key}"}},
                               {"headers": {"Authorization": "Bearer iotd_ak_4"}}):
                    r = await c.get("/api/v1/devices", **kwargs)   # type: ignore[arg-type]
                    assert r.status_code == 429 and 55 <= int(r.headers["retry-after"]) <= 60, r.text
                r = await c.post("/ingest/http", content=b"{}", headers={"X-API-Key": ingest_key})
                assert r.status_code == 429
                assert (await c.get("/healthz")).status_code == 200
                metrics = (await c.get("/metrics")).text
        for kind in ("api_key", "ingest_key", "integration_token"):
            assert f'iotd_auth_failures_total{{kind="{kind}"}} 1.0' in metrics
    finally:
        await drop_database(url)


class DatabaseProxy:
    """A loopback TCP proxy in front of PostgreSQL that a test can cut (every connection closed, nothing
    listening) and restore on the same port: a database outage as the service sees it."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connect, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in self._writers:
            w.close()
        self._writers.clear()
        await self._server.wait_closed()


async def test_a_database_outage_is_a_json_503_with_retry_after() -> None:
    url = await create_database("iotd_outage")
    host_port = url.rpartition("@")[2].partition("/")[0]
    host, _, port = host_port.partition(":")
    proxy = DatabaseProxy((host, int(port or 5432)))
    await proxy.start()
    proxied = url.replace(host_port, f"127.0.0.1:{proxy.port}")
    try:
        async with running_api(proxied, run_distributor=False) as api:
            org = (await api.create("organizations", {"name": "outage"}))["id"]
            await proxy.cut()
            calls: list[tuple[str, str, Any]] = [("GET", "/api/v1/devices", None),
                                                 ("GET", f"/api/v1/organizations/{org}", None),
                                                 ("POST", "/api/v1/organizations", {"name": "during"})]
            for method, path, body in calls:
                r = await api.client.request(method, path, json=body)
                assert r.status_code == 503, (path, r.status_code, r.text)
                assert r.json() == {"error": "the database is unavailable; try again shortly"}
                assert int(r.headers["retry-after"]) > 0
            await proxy.start()            # the database is back: the API is too
            async with asyncio.timeout(10):
                while (await api.client.get("/api/v1/devices")).status_code != 200:
                    await asyncio.sleep(0.2)
    finally:
        await proxy.cut()
        await drop_database(url)


async def test_the_cli_makes_integration_tokens(api: Api) -> None:
    env = {**os.environ, "IOTD_DATABASE_URL": api.service.settings.database_url or ""}
    result = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "distributor.cli", "admin",
                                                      "create-integration-token", "--chirpstack-tenant", TENANT,
                                                      "--name", "from the shell"],
                                     env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert token.startswith("iotd_it_") and token not in result.stderr
    async with chirpstack(api, token) as client:
        async with asyncio.timeout(2):     # made outside the API: the cache takes it on NOTIFY
            while (r := await client.post("/ingest/chirpstack?event=up", content=up(30))).status_code == 401:
                await asyncio.sleep(0.05)
        assert r.status_code == 200, r.text
        assert (await client.post("/ingest/chirpstack?event=up", content=up(31, OTHER_TENANT))).status_code == 403
    bad = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "distributor.cli", "admin",
                                                   "create-integration-token", "--chirpstack-tenant", "nope"],
                                  env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "UUID" in bad.stderr


async def test_unauthenticated_100_mb_bodies_do_not_grow_the_server() -> None:
    """The issue's measurement: an unauthenticated 100 MB body added 238 MB to `iotd serve`'s RSS."""
    url = await create_database("iotd_rss")
    key = await first_key(url)
    proc = ServiceProcess(Settings(database_url=url, mqtt_url=None, secret_key=SECRET_KEY, http_host="127.0.0.1",
                                   chirpstack_http_token=TOKEN))
    proc.start()
    try:
        await proc.ready()
        assert proc.proc is not None
        server = psutil.Process(proc.proc.pid)

        async def flood(path: str, *auth: str) -> None:
            for _ in range(2):
                status, _, sent = await chunked(proc.port, head("POST", path, *auth), HUNDRED_MB)
                assert status in (0, 401, 413) and sent < 32 * 2**20, (path, status, sent)

        before = server.memory_info().rss
        for path in ("/ingest/chirpstack?event=up", "/api/v1/devices/import", "/ingest/http"):
            await flood(path)
        unauthenticated = server.memory_info().rss - before
        assert unauthenticated < 8 * 2**20, f"RSS grew by {unauthenticated / 2**20:.1f} MiB"
        await flood("/api/v1/devices/import", f"Authorization: Bearer {key}")   # read up to its 20 MiB limit
        authenticated = server.memory_info().rss - before
        assert authenticated < 60 * 2**20, f"RSS grew by {authenticated / 2**20:.1f} MiB"
    finally:
        proc.stop()
        await drop_database(url)
