"""A JavaScript worker killed from outside (os.kill of its pid) while uplinks are in it is replaced, and
no message is lost: every uplink is answered 202 and reaches the consumer, decoded or with
``decoder.status = "error"``. Real service, real PostgreSQL, real HTTP ingest and webhook."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.e2e.js_tenants import ingest, js_device, subscribe, tenant
from tests.support.api import Api, running_api
from tests.support.database import create_database, drop_database
from tests.support.receivers import webhook

# About 15 ms of work per uplink, so that the workers hold several when they are killed.
BUSY = """function decodeUplink(input) {
  var until = Date.now() + 15;
  while (Date.now() < until) {}
  return { data: { temperature: input.bytes[0] } };
}"""
UPLINKS = 80


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    url = await create_database("iotd_jsloss")
    async with running_api(url, consumer_allowed_networks="127.0.0.0/8", js_workers=2,
                           js_max_workers_per_organization=2) as a:
        yield a
    await drop_database(url)


async def test_a_killed_worker_is_replaced_and_no_message_is_lost(api: Api) -> None:
    who = await tenant(api, "kill-me")
    device = await js_device(api, who, "busy", BUSY)
    pool = api.service.js_pool
    async with webhook() as (url, got), httpx.AsyncClient(base_url=api.base_url, timeout=30) as client:
        await subscribe(api, who, url, [device])
        await pool.warm()
        before = set(pool.worker_pids())
        sent = [asyncio.create_task(ingest(client, device, bytes([n]))) for n in range(UPLINKS)]
        killed: list[int] = []
        for _ in range(2):
            await asyncio.sleep(0.25)
            busy = [w.pid for w in pool._workers if w is not None and w.inflight and w.pid]
            victim = busy[0] if busy else pool.worker_pids()[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)
        answers = await asyncio.gather(*sent)
        await got.wait_for(lambda bodies: len(bodies) >= UPLINKS, timeout=20)
    assert [status for _, status in answers] == [202] * UPLINKS
    assert len({body["id"] for body in got.bodies}) == UPLINKS
    decoded = [b for b in got.bodies if b["decoder"]["status"] == "ok"]
    assert all(b["payload"]["decoded"]["temperature"] == b["payload"]["decoded"]["temperature"] for b in decoded)
    assert all(b["decoder"]["status"] in ("ok", "error") for b in got.bodies)
    assert len(decoded) >= UPLINKS - 2  # an uplink fails only if it was in both killed workers
    assert pool.restarts >= 2
    async with asyncio.timeout(10):
        while len(pool.worker_pids()) < 2:
            await asyncio.sleep(0.05)
    assert not set(killed) & set(pool.worker_pids()) and set(pool.worker_pids()) != before
