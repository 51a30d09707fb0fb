"""A database outage is logged once when it starts and once when it ends (issue 14, finding 8): the retry
worker logged "retry pass failed" on every poll and the spill store "spill write failed; retrying" on every
attempt. Real PostgreSQL behind a loopback proxy the test cuts (the shared server is never touched).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from distributor.delivery import retry as retry_module
from distributor.delivery import spill as spill_module
from distributor.delivery.backlog import Backlog
from distributor.delivery.retry import RetryWorker
from distributor.delivery.spill import SpillRow, SpillStore
from distributor.metrics import Metrics
from distributor.sinks.base import Outgoing
from registry.db import create_pool
from tests.distributor.test_lane_max_wait import Sink
from tests.distributor.test_retry_drain import consumer, lane
from tests.e2e.test_ingress_security import DatabaseProxy


class RecordingLog:
    def __init__(self) -> None:
        self.events: list[str] = []

    def _record(self, event: str, *args: Any, **fields: Any) -> None:
        self.events.append(event)

    error = warning = info = debug = exception = _record


@pytest.fixture
async def cut_able(database_url: str, migrated_pool: asyncpg.Pool) -> AsyncIterator[tuple[DatabaseProxy, asyncpg.Pool]]:
    host_port = database_url.rpartition("@")[2].partition("/")[0]
    host, _, port = host_port.partition(":")
    proxy = DatabaseProxy((host, int(port or 5432)))
    await proxy.start()
    pool = await create_pool(database_url.replace(host_port, f"127.0.0.1:{proxy.port}"), min_size=1, max_size=3)
    try:
        yield proxy, pool
    finally:
        pool.terminate()
        await proxy.cut()


async def test_spill_writes_failing_are_logged_once_per_outage(cut_able: tuple[DatabaseProxy, asyncpg.Pool],
                                                               migrated_pool: asyncpg.Pool,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    proxy, pool = cut_able
    log = RecordingLog()
    monkeypatch.setattr(spill_module, "log", log)
    store = SpillStore(pool, max_backoff_s=0.05)
    await store.start()
    try:
        cid = await consumer(migrated_pool)
        await proxy.cut()
        done = store.add([SpillRow(cid, Outgoing("m1", b"{}", {}), 0, None, None)])
        await asyncio.sleep(1.0)
        assert store.failures >= 5 and not done.done()
        await proxy.start()
        await asyncio.wait_for(done, 10)
        assert log.events == ["spill writes failing; retrying until PostgreSQL is back", "spill writes work again"]
    finally:
        await store.close()


async def test_retry_passes_failing_are_logged_once_per_outage(cut_able: tuple[DatabaseProxy, asyncpg.Pool],
                                                               migrated_pool: asyncpg.Pool,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    proxy, pool = cut_able
    log = RecordingLog()
    monkeypatch.setattr(retry_module, "log", log)
    cid = await consumer(migrated_pool)
    await migrated_pool.execute("INSERT INTO pending_deliveries (consumer_id, message_id, body) VALUES ($1, 'm', 'x')",
                                cid)
    backlog = Backlog()
    target = lane(cid, Sink(), backlog=backlog)
    worker = RetryWorker(pool, lambda: {cid: target}, Metrics(), instance="t-outage", poll_s=0.02,
                         backlog_every_s=0.05, backlog=backlog)
    await proxy.cut()
    await worker.start()                   # cannot take back its earlier claims now: said once, not fatal
    try:
        await asyncio.sleep(1.0)           # ~50 polls, each failing
        await proxy.start()
        async with asyncio.timeout(10):
            while await migrated_pool.fetchval("SELECT count(*) FROM pending_deliveries WHERE consumer_id = $1", cid):
                await asyncio.sleep(0.05)
        assert [e for e in log.events if "retry passes" in e] == ["retry passes failing; will keep trying",
                                                                 "retry passes work again"]
    finally:
        await worker.close()
