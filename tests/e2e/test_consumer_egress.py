"""Where consumers' data goes out (issue 13, findings 8 and 9): credentials kept out of ``consumers.url``,
no consumer URL reaching internal addresses, reason classes in the delivery log, and sink exceptions that end
in dead letters instead of retrying forever.

Real parts: the service over HTTP, PostgreSQL, aiohttp webhooks on loopback.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest

import distributor.service
from distributor.sinks.base import Outgoing, Sink
from registry import store
from registry.records import Consumer
from registry.targets import TargetPolicy
from tests.support.api import Api, running_api
from tests.support.broker import free_port
from tests.support.database import create_database, drop_database
from tests.support.receivers import webhook
from tests.support.scenario import FAST_RETRIES

PASSWORD, TOKEN, USER = "s3cr3t-pass-41", "query-token-42", "alice-user"


@pytest.fixture(scope="module")
async def api() -> AsyncIterator[Api]:
    url = await create_database("iotd_egress")
    async with running_api(url, **FAST_RETRIES) as a:       # consumers may reach loopback
        yield a
    await drop_database(url)


async def tenant(api: Api, name: str) -> tuple[str, str, dict[str, Any]]:
    """An organization, an application and an HTTP device (json decoder) with its ingest key."""
    org = (await api.create("organizations", {"name": name}))["id"]
    app = (await api.create("applications", {"organization_id": org, "name": "a"}))["id"]
    device = await api.create("devices", {"application_id": app, "name": "d", "kind": "http", "decoder": "json"})
    return org, app, device


async def consumer_with_lane(api: Api, body: dict[str, Any], app: str) -> dict[str, Any]:
    consumer = await api.create("consumers", body)
    await api.create("subscriptions", {"consumer_id": consumer["id"], "application_id": app})
    await lane_ready(api, consumer["id"])
    return consumer


async def lane_ready(api: Api, consumer_id: str, url: str | None = None) -> None:
    """Until the running distributor has a lane for the consumer as it is stored now (with this masked ``url``)."""
    async with asyncio.timeout(5):
        while True:
            snapshot = api.service.cache.snapshot
            wanted = snapshot.consumers.get(consumer_id)
            lane = api.service.dispatcher.lanes.get(consumer_id)
            if (wanted is not None and lane is not None and lane.consumer == wanted
                    and (url is None or wanted.url == url)
                    and any(s.consumer_id == consumer_id for s in snapshot.subscriptions)):
                return
            await asyncio.sleep(0.02)


async def ingest(api: Api, device: dict[str, Any], value: float) -> None:
    async with httpx.AsyncClient(base_url=api.base_url) as client:
        r = await client.post("/ingest/http", content=orjson.dumps({"temperature": value}),
                              headers={"X-API-Key": device["ingest_key"], "Content-Type": "application/json"})
        assert r.status_code == 202, r.text


async def until(predicate: Callable[[], Any], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.05)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def test_url_credentials_are_masked_everywhere_and_still_used_for_delivery(api: Api) -> None:
    org, app, device = await tenant(api, "Masked")
    async with webhook() as (hook_url, got):
        full = hook_url.replace("http://", f"http://{USER}:{PASSWORD}@") + f"?token={TOKEN}"
        consumer = await consumer_with_lane(api, {"organization_id": org, "name": "hook", "kind": "http",
                                                  "url": full}, app)
        masked = hook_url.replace("http://", "http://***:***@") + "?token=***"
        assert consumer["url"] == masked
        await ingest(api, device, 1.0)
        await got.wait_for(lambda b: len(b) >= 1)
        assert got.headers[0]["Authorization"] == basic(USER, PASSWORD)
        assert got.paths[0] == f"/hook?token={TOKEN}"

        # stored: masked in url, the whole URL only encrypted
        assert api.service.pool is not None
        row = await api.service.pool.fetchrow("SELECT url, url_enc FROM consumers WHERE id = $1", consumer["id"])
        assert row["url"] == masked and api.service.box.decrypt(row["url_enc"]) == full
        assert PASSWORD.encode() not in row["url_enc"]

        # a client that read the consumer and sends it back unchanged keeps the credentials
        cid = consumer["id"]
        read = (await api.client.get(f"/api/v1/consumers/{cid}")).json()
        r = await api.client.patch(f"/api/v1/consumers/{cid}", json={"url": read["url"], "name": "renamed"})
        assert r.status_code == 200 and r.json()["url"] == masked
        await asyncio.sleep(0.3)                         # the rename reaches the distributor: a new lane
        await lane_ready(api, cid)
        await ingest(api, device, 2.0)
        await got.wait_for(lambda b: len(b) >= 2)
        assert got.headers[1]["Authorization"] == basic(USER, PASSWORD) and got.paths[1] == f"/hook?token={TOKEN}"

        # an edited masked URL is refused; a new URL replaces the credentials
        edited = masked.replace("/hook", "/other")
        r = await api.client.patch(f"/api/v1/consumers/{cid}", json={"url": edited})
        assert r.status_code == 422 and "***" in r.json()["error"]
        r = await api.client.patch(f"/api/v1/consumers/{cid}", json={"url": hook_url})
        assert r.status_code == 200 and r.json()["url"] == hook_url
        assert await api.service.pool.fetchval("SELECT url_enc FROM consumers WHERE id = $1", cid) is None
        await lane_ready(api, cid, hook_url)
        await ingest(api, device, 3.0)
        await got.wait_for(lambda b: len(b) >= 3)
        assert "Authorization" not in got.headers[2] and got.paths[2] == "/hook"

    bad = await api.client.post("/api/v1/consumers", json={"organization_id": org, "name": "ftp", "kind": "http",
                                                             "url": f"ftp://{USER}:{PASSWORD}@host/x?token={TOKEN}"})
    assert bad.status_code == 422 and "ftp://***:***@host/x?token=***" in bad.json()["error"]
    seen = "".join([(await api.client.get(path)).text for path in (
        f"/api/v1/consumers/{cid}", "/api/v1/consumers", "/api/v1/audit-log?resource=consumer&limit=1000")]) + bad.text
    for secret in (PASSWORD, TOKEN, USER):
        assert secret not in seen


async def test_a_configured_authorization_header_wins_over_url_credentials(api: Api) -> None:
    # aiohttp refuses credentials in the URL plus an Authorization header (ValueError): nothing was delivered
    org, app, device = await tenant(api, "Header wins")
    async with webhook() as (hook_url, got):
        full = hook_url.replace("http://", f"http://{USER}:{PASSWORD}@")
        await consumer_with_lane(api, {"organization_id": org, "name": "hook", "kind": "http", "url": full,
                                       "headers": {"Authorization": "Bearer dept-token-7"}}, app)
        await ingest(api, device, 1.0)
        await got.wait_for(lambda b: len(b) >= 1)
    assert got.headers[0]["Authorization"] == "Bearer dept-token-7"


async def test_the_delivery_log_shows_reason_classes_not_addresses(api: Api) -> None:
    org, app, device = await tenant(api, "Reasons")
    port = free_port()                                   # nothing listens there
    consumer = await consumer_with_lane(api, {"organization_id": org, "name": "down", "kind": "http",
                                              "url": f"http://127.0.0.1:{port}/x"}, app)
    await ingest(api, device, 1.0)
    path = f"/api/v1/consumers/{consumer['id']}/delivery-log"

    async def failed() -> bool:
        return bool((await api.client.get(path)).json()["last_failure_reason"])

    await until(failed)
    log = (await api.client.get(path)).json()
    assert log["last_failure_reason"] == "connection refused" and log["last_failure_status"] is None
    assert api.service.pool is not None
    errors = await api.service.pool.fetch("SELECT last_error FROM pending_deliveries WHERE consumer_id = $1",
                                          consumer["id"])
    assert {e["last_error"] for e in errors} <= {"connection refused", "circuit open", "circuit half-open"}
    assert str(port) not in orjson.dumps(log).decode()


async def test_internal_targets_are_refused_at_the_api_and_at_connect_time() -> None:
    url = await create_database("iotd_ssrf")
    try:
        async with running_api(url, consumer_allowed_networks="", **FAST_RETRIES) as strict, \
                webhook() as (hook_url, got):
            org, app, device = await tenant(strict, "Strict")
            port = hook_url.split(":")[2].split("/")[0]
            for target, words in [
                (f"http://127.0.0.1:{port}/hook", "127.0.0.1 is a loopback address"),
                (f"http://localhost:{port}/hook", "'localhost' resolves only to internal addresses"),
                ("http://169.254.169.254/latest/meta-data", "link-local"),
                ("http://[::ffff:127.0.0.1]:8080/x", "loopback"),
                ("http://[fd00::1]/x", "private"),
                ("http://100.64.0.1/x", "shared (CGNAT)"),
                ("http://127.1:8080/x", "four decimal numbers"),
                ("http://2130706433/x", "four decimal numbers"),
                ("mqtts://10.0.0.5:8883/city/{device}", "private"),
            ]:
                kind = "mqtt" if target.startswith("mqtt") else "http"
                r = await strict.client.post("/api/v1/consumers", json={"organization_id": org, "name": "x",
                                                                        "kind": kind, "url": target})
                assert r.status_code == 422, (target, r.text)
                assert words in r.json()["error"], (target, r.text)
                if "four decimal" not in words:
                    assert "IOTD_CONSUMER_ALLOWED_NETWORKS" in r.json()["error"]
            later = await strict.create("consumers", {"organization_id": org, "name": "later", "kind": "http",
                                                      "url": "http://not-resolvable-now.invalid/hook"})
            r = await strict.client.patch(f"/api/v1/consumers/{later['id']}", json={"url": hook_url})
            assert r.status_code == 422 and "loopback" in r.json()["error"]

            # a row the API never checked (or a name that resolves differently later) is refused when dialled
            assert strict.service.pool is not None
            async with strict.service.pool.acquire() as conn:
                cid = await store.create_consumer(conn, strict.service.box, organization_id=org, name="sneaky",
                                                  kind="http", url=f"http://localhost:{port}/hook")
                await store.create_subscription(conn, consumer_id=cid, application_id=app)
            await lane_ready(strict, cid)
            await ingest(strict, device, 1.0)

            async def refused() -> bool:
                log = (await strict.client.get(f"/api/v1/consumers/{cid}/delivery-log")).json()
                return bool(log["last_failure_reason"] == "target address not allowed")

            await until(refused)
            assert got.requests == 0
    finally:
        await drop_database(url)

    async with running_api(url := await create_database("iotd_ssrf_ok")) as allowing, webhook() as (hook_url, got):
        org, app, device = await tenant(allowing, "Allowed")
        await consumer_with_lane(allowing, {"organization_id": org, "name": "local", "kind": "http",
                                            "url": hook_url.replace("127.0.0.1", "localhost")}, app)
        await ingest(allowing, device, 1.0)
        await got.wait_for(lambda b: len(b) >= 1)
    await drop_database(url)


@pytest.mark.parametrize(("body", "words"), [
    ({"kind": "mqtt", "url": "mqtt://127.0.0.1:1883/city/+/x"}, "wildcards"),
    ({"kind": "mqtt", "url": "mqtt://127.0.0.1:1883/city/#"}, "wildcards"),
    ({"kind": "http", "url": "http://127.0.0.1:9/x", "headers": {"X-A": "a\r\nInjected: 1"}}, "headers"),
])
async def test_configurations_no_sink_could_use_are_refused(api: Api, body: dict[str, Any], words: str) -> None:
    org, _, _ = await tenant(api, f"Unusable {words} {len(str(body))}")
    r = await api.client.post("/api/v1/consumers", json={"organization_id": org, "name": "x", **body})
    assert r.status_code == 422 and words in r.json()["error"], r.text


class Exploding:
    """A sink with a bug: every send raises something that is not a DeliveryError."""

    sends = 0

    async def start(self) -> None:
        return None

    async def send(self, batch: list[Outgoing]) -> None:
        Exploding.sends += 1
        raise ValueError("a bug with details that must not reach the tenant")

    async def close(self) -> None:
        return None


async def test_a_sink_exception_is_counted_as_an_attempt_and_dead_lettered(monkeypatch: pytest.MonkeyPatch) -> None:
    def factory(client_id: str, targets: TargetPolicy) -> Callable[[Consumer], Sink]:
        return lambda consumer: Exploding()

    monkeypatch.setattr(distributor.service, "default_sink_factory", factory)
    url = await create_database("iotd_exploding")
    try:
        async with running_api(url, **{**FAST_RETRIES, "retry_max_attempts": 3}) as exploding:
            org, app, device = await tenant(exploding, "Exploding")
            consumer = await consumer_with_lane(exploding, {"organization_id": org, "name": "bug", "kind": "http",
                                                            "url": "http://127.0.0.1:9/x"}, app)
            await ingest(exploding, device, 1.0)
            assert exploding.service.pool is not None
            pool = exploding.service.pool

            async def dead() -> bool:
                return bool(await pool.fetchval("SELECT count(*) FROM dead_letters WHERE consumer_id = $1",
                                                consumer["id"]))

            await until(dead)
            row = await pool.fetchrow("SELECT attempts, last_error, reason FROM dead_letters WHERE consumer_id = $1",
                                      consumer["id"])
            assert row["last_error"] == "internal error: ValueError" and row["attempts"] == 3
            assert row["reason"] is not None and "attempt" in row["reason"]
            assert not await pool.fetchval("SELECT count(*) FROM pending_deliveries WHERE consumer_id = $1",
                                           consumer["id"])
            path = f"/api/v1/consumers/{consumer['id']}/delivery-log"

            async def logged() -> bool:                  # the delivery log is written once a second
                return bool((await exploding.client.get(path)).json()["last_failure_reason"])

            await until(logged)
            log = (await exploding.client.get(path)).json()
            assert log["last_failure_reason"] == "internal error: ValueError" and log["dead_letters"] == 1
    finally:
        await drop_database(url)
    assert Exploding.sends >= 3
