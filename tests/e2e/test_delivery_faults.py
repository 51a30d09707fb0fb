"""Delivery that loses nothing, under faults: consumer outage, permanent refusal, a hanging consumer,
SIGKILL and SIGTERM of the service, PostgreSQL and broker restarts. Times are shortened by settings.

Real parts throughout: Mosquitto processes, PostgreSQL, HTTP servers started here, `iotd serve` as a
child process for the kill scenarios.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from distributor.service import Service
from registry.db import create_pool
from registry.dead_letters import DeadLetterFilter, get_dead_letter, list_dead_letters, replay
from tests.support.broker import MosquittoBroker
from tests.support.database import ADMIN_URL
from tests.support.receivers import webhook
from tests.support.scenario import FAST_RETRIES, ServiceProcess, provision, publish_all, settings, uplinks


def ids_of(bodies: list[dict[str, object]]) -> set[object]:
    return {b["id"] for b in bodies}


async def test_webhook_down_then_recovering_gets_everything_and_nothing_dies(own_broker: MosquittoBroker,
                                                                             db: str) -> None:
    down_until = [time.monotonic() + 3.0]  # "two minutes", shortened
    async with webhook(status=lambda: 503 if time.monotonic() < down_until[0] else 204) as (url, got):
        await provision(db, {"hook": {"kind": "http", "url": url, "timeout_s": 2}})
        service = Service(settings(db, own_broker, **FAST_RETRIES))
        await service.start()
        try:
            messages = uplinks(200)
            await publish_all(own_broker.port, [b for _, b in messages], per_second=100)
            await got.wait_for(lambda b: ids_of(b) >= {m for m, _ in messages}, timeout=30)
            assert service.pool is not None
            assert await service.pool.fetchval("SELECT count(*) FROM dead_letters") == 0
            await asyncio.sleep(0.3)
            assert await service.pool.fetchval("SELECT count(*) FROM pending_deliveries") == 0
            metrics = service.metrics.render().decode()
            assert "iotd_retries_total" in metrics and 'outcome="ok"' in metrics
        finally:
            await service.stop()


async def test_permanent_refusal_is_dead_lettered_and_replay_delivers(own_broker: MosquittoBroker, db: str) -> None:
    refuse = [True]
    async with webhook(status=lambda: 400 if refuse[0] else 204) as (url, got):
        tenant = await provision(db, {"hook": {"kind": "http", "url": url}})
        service = Service(settings(db, own_broker, **FAST_RETRIES))
        await service.start()
        try:
            (msg_id, body), = uplinks(1)
            await publish_all(own_broker.port, [body])
            assert service.pool is not None
            pool = service.pool
            f = DeadLetterFilter(organization_id=tenant.organization)
            async with asyncio.timeout(10):
                while not await pool.fetchval("SELECT count(*) FROM dead_letters"):
                    await asyncio.sleep(0.05)
            async with pool.acquire() as conn:
                rows = await list_dead_letters(conn, f)
                assert [r["message_id"] for r in rows] == [msg_id] and rows[0]["last_status"] == 400
                detail = await get_dead_letter(conn, DeadLetterFilter(tenant.organization, ids=(rows[0]["id"],)))
                assert detail is not None and detail["last_response"] == "consumer says no"
                assert detail["reason"] == "refused by the consumer" and msg_id in detail["body"]
                other_tenant = DeadLetterFilter(organization_id="00000000-0000-0000-0000-000000000000")
                assert await replay(conn, other_tenant) == 0  # another organization cannot touch it
                refuse[0] = False
                assert await replay(conn, f) == 1
            await got.wait_for(lambda b: ids_of(b) == {msg_id}, timeout=10)
            assert await pool.fetchval("SELECT count(*) FROM dead_letters") == 0
        finally:
            await service.stop()


async def test_a_hanging_consumer_does_not_delay_another(own_broker: MosquittoBroker, db: str) -> None:
    never = asyncio.Event()
    async with webhook(gate=never) as (slow_url, _), webhook() as (fast_url, fast):
        await provision(db, {"slow": {"kind": "http", "url": slow_url, "timeout_s": 5},
                             "fast": {"kind": "http", "url": fast_url}})
        service = Service(settings(db, own_broker, **FAST_RETRIES))
        await service.start()
        try:
            messages = uplinks(100)
            await publish_all(own_broker.port, [b for _, b in messages], per_second=50)
            await fast.wait_for(lambda b: len(ids_of(b)) == 100, timeout=20)
            arrivals = [float(h["X-Arrived"]) for h in fast.headers]
            assert arrivals  # latency: arrival at the fast consumer minus receipt by iotd
            latencies = [a - _epoch(b["received_at"]) for a, b in zip(arrivals, fast.bodies, strict=True)]
            assert max(latencies) < 1.0, f"fast consumer waited {max(latencies):.2f} s behind a hanging one"
        finally:
            never.set()
            await service.stop()


def _epoch(ts: object) -> float:
    from datetime import datetime

    return datetime.fromisoformat(str(ts).replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
async def test_service_killed_mid_stream_loses_nothing(own_broker: MosquittoBroker, db: str, sig: int) -> None:
    async with webhook() as (url, got):
        await provision(db, {"hook": {"kind": "http", "url": url}})
        s = settings(db, own_broker, **FAST_RETRIES)
        proc = ServiceProcess(s)
        proc.start()
        try:
            await proc.ready()
            messages = uplinks(5000)

            async def kill_mid_stream() -> int:
                await got.wait_for(lambda b: len(b) >= 1000, timeout=60)
                proc.kill(sig)
                return await proc.wait()

            _, code = await asyncio.gather(publish_all(own_broker.port, [b for _, b in messages]),
                                           kill_mid_stream())
            if sig == signal.SIGTERM:
                assert code == 0, proc.stderr()
            proc.start()  # same client id: the broker redelivers the persistent session
            await proc.ready()
            await got.wait_for(lambda b: ids_of(b) >= {m for m, _ in messages}, timeout=120)
            assert len(ids_of(got.bodies)) == 5000
        finally:
            proc.stop()


def _pg_cluster() -> tuple[str, str] | None:
    if "127.0.0.1" not in ADMIN_URL and "localhost" not in ADMIN_URL:
        return None
    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").exists():
        return None
    versions = sorted(os.listdir("/etc/postgresql"))
    return (versions[-1], "main") if versions else None


@pytest.mark.skipif(_pg_cluster() is None, reason="needs the local Debian PostgreSQL cluster to restart it")
async def test_postgres_restart_mid_stream_loses_nothing(own_broker: MosquittoBroker, db: str) -> None:
    cluster = _pg_cluster()
    assert cluster is not None
    # the consumer is down across the restart, so deliveries must spill while PostgreSQL is away
    outage = [False]
    async with webhook(status=lambda: 503 if outage[0] else 204) as (url, got):
        await provision(db, {"hook": {"kind": "http", "url": url}})
        service = Service(settings(db, own_broker, **FAST_RETRIES))
        await service.start()
        try:
            messages = uplinks(3000)

            async def restart_mid_stream() -> None:
                await got.wait_for(lambda b: len(b) >= 500, timeout=30)
                outage[0] = True
                await asyncio.to_thread(subprocess.run, ["pg_ctlcluster", "--skip-systemctl-redirect", *cluster,
                                                         "restart"], check=True, capture_output=True)
                await asyncio.sleep(1.0)
                outage[0] = False

            await asyncio.gather(publish_all(own_broker.port, [b for _, b in messages], per_second=1000),
                                 restart_mid_stream())
            await got.wait_for(lambda b: ids_of(b) >= {m for m, _ in messages}, timeout=60)
            # the registry listener came back: a change made now still reaches the cache
            pool = await create_pool(db)
            await pool.execute("UPDATE devices SET name = 'renamed'")
            await pool.close()
            async with asyncio.timeout(10):
                while next(iter(service.cache.snapshot.devices.values())).name != "renamed":
                    await asyncio.sleep(0.05)
        finally:
            await service.stop()


async def test_broker_restart_mid_stream_loses_nothing(own_broker: MosquittoBroker, db: str) -> None:
    # a consumer that takes a moment, so the stream is still flowing at the restart
    async with webhook(delay_s=0.003) as (url, got):
        await provision(db, {"hook": {"kind": "http", "url": url, "options": {"concurrency": 2}}})
        service = Service(settings(db, own_broker, **FAST_RETRIES))
        await service.start()
        try:
            messages = uplinks(2000)
            await publish_all(own_broker.port, [b for _, b in messages])
            await got.wait_for(lambda b: len(b) >= 300, timeout=30)
            own_broker.restart()
            await got.wait_for(lambda b: ids_of(b) >= {m for m, _ in messages}, timeout=60)
        finally:
            await service.stop()


async def test_two_instances_share_the_retry_store_without_double_delivery(own_broker: MosquittoBroker,
                                                                           db: str) -> None:
    outage = [True]
    async with webhook(status=lambda: 503 if outage[0] else 204) as (url, got):
        await provision(db, {"hook": {"kind": "http", "url": url}})
        first = Service(settings(db, own_broker, **FAST_RETRIES))
        second = Service(settings(db, own_broker, **{**FAST_RETRIES, "mqtt_url": None, "run_api": False}))
        await first.start()
        await second.start()
        try:
            messages = uplinks(400)
            await publish_all(own_broker.port, [b for _, b in messages])
            assert first.pool is not None
            async with asyncio.timeout(20):
                while await first.pool.fetchval("SELECT count(*) FROM pending_deliveries") < 400:
                    await asyncio.sleep(0.05)
            outage[0] = False
            await got.wait_for(lambda b: ids_of(b) >= {m for m, _ in messages}, timeout=30)
            await asyncio.sleep(0.5)  # any double delivery would arrive now
            delivered = [b["id"] for b in got.bodies]
            assert len(delivered) == len(set(delivered)) == 400
            assert await first.pool.fetchval("SELECT count(*) FROM pending_deliveries") == 0
        finally:
            await second.stop()
            await first.stop()


async def test_departments_see_the_delivery_log_and_replay_through_the_api(own_broker: MosquittoBroker,
                                                                           db: str) -> None:
    from tests.support.api import running_api

    refuse = [True]
    async with webhook(status=lambda: 400 if refuse[0] else 204) as (url, got), \
            running_api(db, own_broker, **FAST_RETRIES) as api:
        tenant = await provision(db, {"hook": {"kind": "http", "url": url}})
        hook = tenant.consumers["hook"]
        async with asyncio.timeout(5):
            while hook not in api.service.dispatcher.lanes:
                await asyncio.sleep(0.02)
        (msg_id, body), = uplinks(1)
        await publish_all(own_broker.port, [body])
        async with asyncio.timeout(10):
            while not (dead := (await api.client.get("/api/v1/dead-letters", params={"consumer_id": hook})).json(
                    )["items"]):
                await asyncio.sleep(0.05)
        detail = (await api.client.get(f"/api/v1/dead-letters/{dead[0]['id']}")).json()
        assert detail["message_id"] == msg_id and detail["last_status"] == 400
        assert detail["last_response"] == "consumer says no" and detail["history"]
        async with asyncio.timeout(10):
            while (log := (await api.client.get(f"/api/v1/consumers/{hook}/delivery-log")).json())["failed"] < 1:
                await asyncio.sleep(0.1)
        assert log["last_failure_status"] == 400 and log["dead_letters"] == 1 and log["error_rate"] == 1.0
        refuse[0] = False
        r = await api.client.post("/api/v1/dead-letters/replay", json={"consumer_id": hook})
        assert r.json() == {"count": 1}
        await got.wait_for(lambda b: ids_of(b) == {msg_id}, timeout=10)
        async with asyncio.timeout(10):
            while (log := (await api.client.get(f"/api/v1/consumers/{hook}/delivery-log")).json())["delivered"] < 1:
                await asyncio.sleep(0.1)
        assert log["last_success_at"] is not None and log["dead_letters"] == 0 and log["health"] == "closed"
