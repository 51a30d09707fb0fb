"""Replays and backfills of the message history (issue 17): stored messages go to a consumer again, in time
order, marked as replays, while live traffic flows; a new subscription's backfill meets its live messages
without a gap or a duplicate.

Real parts: the service (API, HTTP ingest, history, delivery) in this process over real HTTP, PostgreSQL,
an aiohttp webhook as the consumer.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from tests.support.api import Api, running_api
from tests.support.database import create_database, drop_database
from tests.support.receivers import Received, webhook

FAST = {"replay_poll_s": 0.05, "replay_settle_s": 0.3, "backfill_seam_s": 1.0, "retry_poll_s": 0.05,
        "retry_base_s": 0.05, "retry_max_backoff_s": 0.3, "drain_timeout_s": 3, "circuit_threshold": 3,
        "circuit_cooldown_s": 0.2, "circuit_max_cooldown_s": 0.5}


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    url = await create_database("iotd_replays")
    async with running_api(url, **FAST) as a:
        yield a
    await drop_database(url)


async def meter(api: Api) -> tuple[str, str, str, str]:
    """(organization, application, device id, ingest key) of a JSON-decoded HTTP device."""
    org = (await api.create("organizations", {"name": "Odense"}))["id"]
    app = (await api.create("applications", {"organization_id": org, "name": "Water"}))["id"]
    device = await api.create("devices", {"application_id": app, "name": "well", "kind": "nbiot",
                                          "imei": "490154203237518", "decoder": "json"})
    return org, app, device["id"], device["ingest_key"]


async def until_loaded(api: Api, device_id: str, consumer: str | None = None) -> None:
    """Until the distributor knows the device (and routes it to ``consumer``, through an open lane)."""
    async with asyncio.timeout(5):
        while True:
            snap = api.service.cache.snapshot
            device = snap.devices.get(device_id)
            if device is not None and (consumer is None or (
                    any(c.id == consumer for c in snap.consumers_for(device))
                    and consumer in api.service.dispatcher.lanes)):
                return
            await asyncio.sleep(0.02)


async def subscribed(api: Api, org: str, app: str, device_id: str, url: str) -> str:
    """A webhook consumer of the application, routed by the running distributor; its id."""
    consumer: str = (await api.create("consumers", {"organization_id": org, "name": "dept", "kind": "http",
                                                    "url": url}))["id"]
    await api.create("subscriptions", {"consumer_id": consumer, "application_id": app})
    await until_loaded(api, device_id, consumer)
    return consumer


async def delivered_and_stored(device: Device, got: Received, n: int) -> datetime:
    """Post ``n`` readings and wait until the consumer has them and they settled in the history; returns the
    time before the first."""
    start = datetime.now(UTC)
    await device.post(n)
    await got.wait_for(lambda b: len(b) >= n)
    await asyncio.sleep(0.4)
    return start


class Device:
    """Posts numbered readings through /ingest/http and remembers what was accepted, in order."""

    def __init__(self, api: Api, key: str) -> None:
        self.client = httpx.AsyncClient(base_url=api.base_url, timeout=10)
        self.key = key
        self.accepted: list[str] = []
        self.n = 0

    async def post(self, count: int, pause_s: float = 0.0) -> list[str]:
        ids = []
        for _ in range(count):
            self.n += 1
            r = await self.client.post("/ingest/http", content=orjson.dumps({"level": self.n}),
                                       headers={"Authorization": f"ApiKey {self.key}",
                                                "Idempotency-Key": f"r{self.n}"})
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
            if pause_s:
                await asyncio.sleep(pause_s)
        self.accepted.extend(ids)
        return ids


def marked(got: Received, replay: str | None) -> list[str]:
    """Ids of the messages received with ``X-Iotd-Replay: replay`` (None: without the header), in arrival order."""
    return [b["id"] for b, h in zip(got.bodies, got.headers, strict=True) if h.get("X-Iotd-Replay") == replay]


async def finished(api: Api, replay_id: str, timeout: float = 20) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            job: dict[str, Any] = (await api.client.get(f"/api/v1/replays/{replay_id}")).json()
            if job["state"] not in ("queued", "running"):
                return job
            await asyncio.sleep(0.05)


async def test_a_replay_delivers_exactly_the_range_in_order_marked_while_live_traffic_flows(api: Api) -> None:
    org, app, device_id, key = await meter(api)
    async with webhook() as (url, got):
        consumer = await subscribed(api, org, app, device_id, url)
        device = Device(api, key)
        await device.post(5)
        start = datetime.now(UTC)
        lost_day = await device.post(30)
        end = datetime.now(UTC)
        await device.post(10)
        await got.wait_for(lambda b: len(b) >= 45)
        assert marked(got, None) == device.accepted        # live, in order, unmarked
        await asyncio.sleep(0.4)                             # the range settles in the history

        live = asyncio.create_task(device.post(30, pause_s=0.02))
        r = await api.client.post(f"/api/v1/consumers/{consumer}/replay",
                                  json={"from": start.isoformat(), "to": end.isoformat(), "rate": 200})
        assert r.status_code == 202, r.text
        job = r.json()
        assert r.headers["Location"] == f"/api/v1/replays/{job['id']}"
        assert job["kind"] == "replay" and job["state"] == "queued" and job["from"] and job["to"]
        done = await finished(api, job["id"])
        later = await live
        await got.wait_for(lambda b: len(b) >= 45 + 30 + 30)

    assert done["state"] == "done" and done["progress"] == 1.0, done
    assert (done["sent"], done["spilled"]) == (30, 0), done
    assert marked(got, job["id"]) == lost_day              # exactly the range, in time order, once
    assert marked(got, None) == device.accepted[:45] + later  # live traffic went on, unmarked
    assert set(Counter(h.get("X-Iotd-Replay") for h in got.headers)) == {None, job["id"]}


async def test_a_backfill_meets_the_live_messages_without_gap_or_duplicate(api: Api) -> None:
    org, app, device_id, key = await meter(api)
    await until_loaded(api, device_id)
    device = Device(api, key)
    since = datetime.now(UTC)
    await device.post(40)
    await asyncio.sleep(0.4)
    async with webhook() as (url, got):
        consumer = (await api.create("consumers", {"organization_id": org, "name": "new dept", "kind": "http",
                                                   "url": url}))["id"]
        # the device keeps sending while the subscription is made, reaches the distributor and its seam passes
        sending = asyncio.create_task(device.post(150, pause_s=0.015))
        await asyncio.sleep(0.5)
        sub = await api.create("subscriptions", {"consumer_id": consumer, "application_id": app,
                                                 "backfill_from": since.isoformat()})
        assert sub["backfill_id"] and sub["live_from"], sub
        await sending
        job = await finished(api, sub["backfill_id"])
        await got.wait_for(lambda b: len(b) >= len(device.accepted))
        await asyncio.sleep(0.3)                             # nothing more may arrive

    assert job["state"] == "done" and job["kind"] == "backfill", job
    ids = [b["id"] for b in got.bodies]
    assert len(ids) == len(set(ids)), "a message went out twice at the seam"
    assert set(ids) == set(device.accepted), "a message went out neither live nor in the backfill"
    backfilled, live = marked(got, sub["backfill_id"]), marked(got, None)
    assert backfilled and live and len(backfilled) + len(live) == len(device.accepted)
    order = {m: i for i, m in enumerate(device.accepted)}
    assert backfilled == sorted(backfilled, key=order.__getitem__)     # time order
    assert max(order[m] for m in backfilled) < min(order[m] for m in live)   # one seam: stored first, then live
    seam = datetime.fromisoformat(sub["live_from"])
    received = {b["id"]: datetime.fromisoformat(b["received_at"].replace("Z", "+00:00")) for b in got.bodies}
    ms = timedelta(milliseconds=1)                     # a message's received_at is shown to the millisecond
    assert all(received[m] < seam for m in backfilled) and all(received[m] > seam - ms for m in live)


async def test_a_cancelled_replay_stops_and_says_so(api: Api) -> None:
    org, app, device_id, key = await meter(api)
    async with webhook() as (url, got):
        consumer = await subscribed(api, org, app, device_id, url)
        start = await delivered_and_stored(Device(api, key), got, 60)
        r = await api.client.post(f"/api/v1/consumers/{consumer}/replay", json={"from": start.isoformat(), "rate": 20})
        job = r.json()
        await got.wait_for(lambda b: len(marked(got, job["id"])) >= 5)
        r = await api.client.post(f"/api/v1/replays/{job['id']}/cancel")
        assert r.status_code == 200 and r.json()["state"] == "cancelled", r.text
        await asyncio.sleep(0.5)
        count = len(marked(got, job["id"]))
        await asyncio.sleep(0.5)
        assert len(marked(got, job["id"])) == count < 60          # it stopped
        again = await api.client.post(f"/api/v1/replays/{job['id']}/cancel")
        assert again.status_code == 409 and "cancelled" in again.json()["error"]
        listed = (await api.client.get(f"/api/v1/consumers/{consumer}/replays")).json()
        assert [j["id"] for j in listed["items"]] == [job["id"]] and listed["items"][0]["state"] == "cancelled"


async def test_replays_need_write_access_to_the_consumers_organization(api: Api) -> None:
    org, _, _, _ = await meter(api)
    other = (await api.create("organizations", {"name": "Vejle"}))["id"]
    other_app = (await api.create("applications", {"organization_id": other, "name": "Roads"}))["id"]
    consumer = (await api.create("consumers", {"organization_id": org, "name": "dept", "kind": "http",
                                               "url": "http://127.0.0.1:9/hook"}))["id"]
    body = {"from": (datetime.now(UTC) - timedelta(hours=1)).isoformat()}
    reader = (await api.create("api-keys", {"name": "r", "role": "read", "organization_id": org}))["key"]
    stranger = (await api.create("api-keys", {"name": "s", "role": "admin", "organization_id": other}))["key"]
    async with api.as_key(reader) as r_client, api.as_key(stranger) as s_client:
        assert (await r_client.post(f"/api/v1/consumers/{consumer}/replay", json=body)).status_code == 403
        assert (await s_client.post(f"/api/v1/consumers/{consumer}/replay", json=body)).status_code == 404
        assert (await s_client.get(f"/api/v1/consumers/{consumer}/replays")).status_code == 404
        job = (await api.client.post(f"/api/v1/consumers/{consumer}/replay", json=body)).json()
        assert (await r_client.get(f"/api/v1/replays/{job['id']}")).status_code == 200
        assert (await s_client.get(f"/api/v1/replays/{job['id']}")).status_code == 404
        assert (await s_client.post(f"/api/v1/replays/{job['id']}/cancel")).status_code == 404
        assert (await r_client.post(f"/api/v1/replays/{job['id']}/cancel")).status_code == 403
    wrong = await api.client.post(f"/api/v1/consumers/{consumer}/replay", json={**body, "application_id": other_app})
    assert wrong.status_code == 404 and "application" in wrong.json()["error"]
    reprocess = {**body, "consumer_ids": [consumer]}
    async with api.as_key(reader) as r_client, api.as_key(stranger) as s_client:
        assert (await r_client.post("/api/v1/decoders/json/reprocess", json=reprocess)).status_code == 403
        foreign = await s_client.post("/api/v1/decoders/json/reprocess", json=reprocess)   # not Vejle's consumer
        assert foreign.status_code == 404 and "consumer" in foreign.json()["error"]
        assert (await s_client.post("/api/v1/decoders/json/reprocess", json={**body, "organization_id": org})
                ).status_code == 404
    unnamed = await api.client.post("/api/v1/decoders/json/reprocess", json=body)
    assert unnamed.status_code == 422 and "organization_id" in unnamed.json()["error"]
    late = await api.client.post(f"/api/v1/consumers/{consumer}/replay",
                                 json={"from": (datetime.now(UTC) + timedelta(hours=1)).isoformat()})
    assert late.status_code == 422 and "from" in late.json()["error"]


async def test_a_replay_that_fails_goes_through_the_retry_machinery_and_keeps_its_mark(api: Api) -> None:
    org, app, device_id, key = await meter(api)
    answers = {"status": 204}
    async with webhook(status=lambda: answers["status"]) as (url, got):
        consumer = await subscribed(api, org, app, device_id, url)
        device = Device(api, key)
        start = await delivered_and_stored(device, got, 20)
        answers["status"] = 503                        # the department's server falls over during the replay
        spilled_before = api.service.metrics.spilled.labels(consumer)._value.get()
        job = (await api.client.post(f"/api/v1/consumers/{consumer}/replay", json={"from": start.isoformat()})).json()
        async with asyncio.timeout(10):                 # the job waits for the consumer, it does not skip it
            while "circuit" not in ((waiting := (await api.client.get(f"/api/v1/replays/{job['id']}")).json())
                                    ["waiting"] or ""):
                await asyncio.sleep(0.05)
        assert waiting["state"] == "running" and waiting["spilled"] > 0, waiting
        answers["status"] = 204
        done = await finished(api, job["id"])
        await got.wait_for(lambda b: len(marked(got, job["id"])) >= 20, timeout=20)

    assert done["state"] == "done" and done["spilled"] > 0 and done["waiting"] is None, done
    assert done["sent"] + done["spilled"] == 20, done
    # counted like the lane's own spills (iotd_spilled_total), so operators see a replay's failures
    assert api.service.metrics.spilled.labels(consumer)._value.get() - spilled_before == done["spilled"]
    assert sorted(marked(got, job["id"])) == sorted(device.accepted)    # retried, still marked as the replay


LEVEL_V1 = "function decodeUplink(input) { return {data: {distance: input.bytes[0] / 100}}; }"
LEVEL_V2 = "function decodeUplink(input) { return {data: {distance: input.bytes[0] / 10, unit: 'cm'}}; }"


async def test_reprocess_decodes_stored_uplinks_again_stores_and_replays_the_new_results(api: Api) -> None:
    org = (await api.create("organizations", {"name": "Aalborg"}))["id"]
    app = (await api.create("applications", {"organization_id": org, "name": "Levels"}))["id"]
    await api.create("decoders", {"id": "level", "organization_id": org, "source": LEVEL_V1})
    level = await api.create("devices", {"application_id": app, "name": "level", "kind": "http", "decoder": "level"})
    other = await api.create("devices", {"application_id": app, "name": "other", "kind": "nbiot",
                                         "imei": "490154203237518", "decoder": "json"})
    async with webhook() as (url, got):
        consumer = (await api.create("consumers", {"organization_id": org, "name": "dept", "kind": "http",
                                                   "url": url}))["id"]
        await api.create("subscriptions", {"consumer_id": consumer, "application_id": app})
        await until_loaded(api, level["id"], consumer)
        await until_loaded(api, other["id"], consumer)
        start = datetime.now(UTC)
        async with httpx.AsyncClient(base_url=api.base_url, timeout=10) as device:
            for n in range(1, 11):
                r = await device.post("/ingest/http", content=bytes([n * 10]),
                                      headers={"Authorization": f"ApiKey {level['ingest_key']}",
                                               "Content-Type": "application/octet-stream"})
                assert r.status_code == 202, r.text
            r = await device.post("/ingest/http", content=b'{"level": 1}',
                                  headers={"Authorization": f"ApiKey {other['ingest_key']}"})
            assert r.status_code == 202, r.text
        await got.wait_for(lambda b: len(b) >= 11)
        live = {b["id"]: b for b in got.bodies}
        assert sorted(b["payload"]["decoded"]["distance"] for b in got.bodies if b["device"]["id"] == level["id"]) \
            == [n / 10 for n in range(1, 11)]
        r = await api.client.patch("/api/v1/decoders/level", json={"source": LEVEL_V2})
        assert r.status_code == 200, r.text
        async with asyncio.timeout(5):
            while api.service.cache.snapshot.js_decoders["level"].version != 2:
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.4)
        r = await api.client.post("/api/v1/decoders/level/reprocess",
                                  json={"from": start.isoformat(), "organization_id": org, "consumer_ids": [consumer]})
        assert r.status_code == 202, r.text
        job = await finished(api, r.json()["id"])
        await got.wait_for(lambda b: len(marked(got, job["id"])) >= 10)

    assert job["state"] == "done" and job["kind"] == "reprocess" and (job["sent"], job["skipped"]) == (10, 1), job
    again = [b for b, h in zip(got.bodies, got.headers, strict=True) if h.get("X-Iotd-Replay") == job["id"]]
    assert {b["id"] for b in again} == {i for i, b in live.items() if b["device"]["id"] == level["id"]}
    assert all(b["decoder"]["version"] == "js-2" and b["payload"]["decoded"]["unit"] == "cm" for b in again)
    for b in again:   # the same uplink, the same message id and times: only the decoding is new
        assert b["payload"]["raw"] == live[b["id"]]["payload"]["raw"]
        assert b["received_at"] == live[b["id"]]["received_at"]
        assert b["payload"]["decoded"]["distance"] == live[b["id"]]["payload"]["decoded"]["distance"] * 10
    stored = (await api.client.get(f"/api/v1/devices/{level['id']}/messages")).json()["items"]
    assert sorted(m["payload"]["decoded"]["distance"] for m in stored) == [float(n) for n in range(1, 11)]
    series = (await api.client.get(f"/api/v1/devices/{level['id']}/measurements",
                                   params={"every": "1d", "name": "distance"})).json()["series"]["distance"]
    assert series[0]["max"] == 10.0 and series[0]["count"] == 10
    untouched = (await api.client.get(f"/api/v1/devices/{other['id']}/messages")).json()["items"]
    assert [m["decoder"]["id"] for m in untouched] == ["json"] and untouched[0]["id"] in live


async def test_reprocess_goes_on_when_a_chosen_consumer_is_deleted_meanwhile(api: Api) -> None:
    org, app, device_id, key = await meter(api)
    async with webhook() as (url, _):
        consumer = await subscribed(api, org, app, device_id, url)
        start = datetime.now(UTC)
        await Device(api, key).post(5)           # just received: the job first waits for them to settle
        r = await api.client.post("/api/v1/decoders/json/reprocess",
                                  json={"from": start.isoformat(), "organization_id": org, "consumer_ids": [consumer]})
        assert r.status_code == 202, r.text
        assert (await api.client.delete(f"/api/v1/consumers/{consumer}")).status_code == 204
        job = await finished(api, r.json()["id"])
    assert job["state"] == "done" and job["sent"] == 0, job
    stored = (await api.client.get(f"/api/v1/devices/{device_id}/messages")).json()["items"]
    assert len(stored) == 5 and all(m["decoder"]["status"] == "ok" for m in stored)   # decoded again and kept
