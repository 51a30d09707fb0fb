"""The retry worker drains a backlog at the consumer's capacity and recovers fast (issue 14, finding 4),
on real PostgreSQL with the project's migrations; consumers are in-process sinks that record what they get.

* concurrency and full batches: a pass sends ``batch_size`` rows per request, ``options.concurrency`` at once
  (it sent one chunk at a time);
* one consumer's slow pass never delays another consumer's retries (passes ran one consumer after another);
* strict order: rows go in arrival order and nothing overtakes a row that is not due yet; a probe takes the
  head anyway;
* a successful probe makes the whole backlog due at once (rows waited out backoffs grown during the outage);
* ``iotd_pending_deliveries`` follows spills and deliveries at once (it lagged up to 5 s).
"""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import pytest

from distributor.delivery.backlog import Backlog
from distributor.delivery.lane import ConsumerLane
from distributor.delivery.policy import CircuitBreaker
from distributor.delivery.retry import RetryWorker
from distributor.delivery.spill import SpillRow, SpillStore
from distributor.metrics import Metrics
from distributor.sinks.base import DeliveryError, Outgoing
from registry.records import Consumer
from tests.distributor.test_lane_max_wait import Sink, Spill


@pytest.fixture
def pool(migrated_pool: asyncpg.Pool) -> asyncpg.Pool:
    return migrated_pool


class BatchSink(Sink):
    """Also records each request's size, in order."""

    def __init__(self, delay: float | None = 0.0, error: DeliveryError | None = None) -> None:
        super().__init__(delay, error)
        self.batches: list[list[str]] = []

    async def send(self, batch: list[Outgoing]) -> None:
        self.batches.append([o.message_id for o in batch])
        await super().send(batch)


async def consumer(pool: asyncpg.Pool) -> str:
    org = await pool.fetchval("INSERT INTO organizations (name) VALUES ($1) RETURNING id", f"o-{uuid.uuid4().hex}")
    return str(await pool.fetchval(
        "INSERT INTO consumers (organization_id, name, kind, url) VALUES ($1, 'c', 'http', 'https://example.org/h')"
        " RETURNING id", org))


async def pending(pool: asyncpg.Pool, cid: str, n: int, prefix: str = "m", due_in_s: float = 0.0) -> list[str]:
    ids = [f"{prefix}{i}" for i in range(n)]
    await pool.executemany(
        "INSERT INTO pending_deliveries (consumer_id, message_id, body, next_attempt_at, created_at)"
        " VALUES ($1, $2, '{}', now() + make_interval(secs => $3), now())", [(cid, m, due_in_s) for m in ids])
    return ids


def lane(cid: str, sink: Sink, *, concurrency: int = 1, batch_size: int = 1, order: str = "fresh-first",
         backlog: Backlog | None = None, breaker: CircuitBreaker | None = None) -> ConsumerLane:
    c = Consumer(id=cid, organization_id="o1", name="hook", kind="http", url="https://example.org/h",
                 batch_size=batch_size, timeout_s=5, options={"order": order})
    return ConsumerLane(c, sink, Spill(), Metrics(), concurrency=concurrency, backlog=backlog,  # type: ignore[arg-type]
                        breaker=breaker)


def worker(pool: asyncpg.Pool, lanes: dict[str, ConsumerLane], backlog: Backlog | None = None) -> RetryWorker:
    return RetryWorker(pool, lambda: lanes, Metrics(), instance=f"t-{uuid.uuid4().hex[:6]}", poll_s=0.02,
                       backlog=backlog)


async def left(pool: asyncpg.Pool, cid: str) -> int:
    n: int = await pool.fetchval("SELECT count(*) FROM pending_deliveries WHERE consumer_id = $1", cid)
    return n


async def test_a_backlog_drains_in_full_batches_at_the_consumers_concurrency(pool: asyncpg.Pool) -> None:
    cid = await consumer(pool)
    ids = await pending(pool, cid, 200)
    sink = BatchSink(delay=0.05)
    target = lane(cid, sink, concurrency=4, batch_size=10)
    retry = worker(pool, {cid: target})
    started = time.monotonic()
    while await retry.retry(target):
        pass
    took = time.monotonic() - started
    assert sorted(sink.sent) == sorted(ids) and await left(pool, cid) == 0
    assert {len(b) for b in sink.batches} == {10}
    assert sink.most_in_flight == 4, "the backlog was sent one request at a time"
    assert took < 20 * 0.05 * 0.6, f"{took:.2f} s for 20 requests of 50 ms at concurrency 4"


async def test_one_slow_consumer_does_not_delay_another_consumers_retries(pool: asyncpg.Pool) -> None:
    slow_id, fast_id = await consumer(pool), await consumer(pool)
    await pending(pool, slow_id, 20)
    fast_ids = await pending(pool, fast_id, 20)
    backlog = Backlog()
    backlog.stored({slow_id: 20, fast_id: 20})
    slow_sink, fast_sink = Sink(delay=2.0), Sink()
    lanes = {slow_id: lane(slow_id, slow_sink), fast_id: lane(fast_id, fast_sink)}
    retry = worker(pool, lanes, backlog)
    await retry.start()
    try:
        async with asyncio.timeout(1.5):
            while sorted(fast_sink.sent) != sorted(fast_ids):
                await asyncio.sleep(0.02)
    finally:
        await retry.close()


async def test_strict_order_stops_at_a_row_not_due_and_a_probe_takes_the_head(pool: asyncpg.Pool) -> None:
    cid = await consumer(pool)
    first = await pending(pool, cid, 3, prefix="a")
    waiting = await pending(pool, cid, 1, prefix="b", due_in_s=3600)    # e.g. failed, backing off
    after = await pending(pool, cid, 3, prefix="c")
    sink = BatchSink()
    breaker = CircuitBreaker(threshold=1, cooldown_s=0.01)
    target = lane(cid, sink, order="strict", concurrency=2, breaker=breaker)
    retry = worker(pool, {cid: target})
    assert await retry.retry(target) == 3
    assert await retry.retry(target) == 0
    assert sink.sent == first                     # nothing overtook the row that waits
    breaker.failure(time.monotonic())             # the circuit is open: its probe takes the head, due or not
    await asyncio.sleep(0.02)
    assert breaker.may_probe(time.monotonic(), backlog=True) and breaker.state == "half-open"
    assert await retry.retry(target) == 1
    while await retry.retry(target):
        pass
    assert sink.sent == first + waiting + after


async def test_fresh_first_takes_due_rows_beside_rows_that_wait(pool: asyncpg.Pool) -> None:
    cid = await consumer(pool)
    await pending(pool, cid, 1, prefix="b", due_in_s=3600)
    after = await pending(pool, cid, 3, prefix="c")
    sink = BatchSink()
    target = lane(cid, sink)
    assert await worker(pool, {cid: target}).retry(target) == 3
    assert sink.sent == after


async def test_a_successful_probe_makes_the_whole_backlog_due(pool: asyncpg.Pool) -> None:
    cid = await consumer(pool)
    due = await pending(pool, cid, 1, prefix="a")
    backed_off = await pending(pool, cid, 30, prefix="b", due_in_s=300)   # backoffs grown during the outage
    sink = BatchSink()
    breaker = CircuitBreaker(threshold=1, cooldown_s=0.01)
    target = lane(cid, sink, concurrency=4, batch_size=5, breaker=breaker)
    retry = worker(pool, {cid: target})
    breaker.failure(time.monotonic())
    await asyncio.sleep(0.02)
    assert breaker.may_probe(time.monotonic(), backlog=True)
    assert await retry.retry(target) == 1 and breaker.state == "closed"     # the probe: one batch
    while await retry.retry(target):
        pass
    assert sorted(sink.sent) == sorted(due + backed_off) and await left(pool, cid) == 0


async def test_a_failed_chunk_stops_the_pass_and_releases_what_was_not_sent(pool: asyncpg.Pool) -> None:
    cid = await consumer(pool)
    await pending(pool, cid, 12)
    sink = BatchSink(error=DeliveryError("HTTP 503", status=503))
    target = lane(cid, sink, concurrency=1, batch_size=3)
    assert await worker(pool, {cid: target}).retry(target) == 0
    assert len(sink.batches) == 1                 # one request failed; the other three chunks were not tried
    rows = await pool.fetch("SELECT attempts, claimed_by, next_attempt_at <= now() AS due FROM pending_deliveries"
                            " WHERE consumer_id = $1 ORDER BY id", cid)
    assert [r["attempts"] for r in rows] == [1] * 3 + [0] * 9
    assert all(r["claimed_by"] is None for r in rows) and all(r["due"] for r in rows[3:])


async def test_the_pending_gauge_follows_spills_and_deliveries_at_once(pool: asyncpg.Pool) -> None:
    cid = await consumer(pool)
    metrics = Metrics()
    backlog = Backlog(metrics.pending)
    store = SpillStore(pool, on_stored=backlog.stored)
    await store.start()
    try:
        def gauge() -> float | None:
            return metrics.registry.get_sample_value("iotd_pending_deliveries", {"consumer": cid})

        rows = [SpillRow(cid, Outgoing(f"m{i}", b"{}", {}), 0, None, None) for i in range(40)]
        await asyncio.wait_for(asyncio.gather(store.add(rows[:25]), store.add(rows[25:])), 5)
        assert gauge() == 40 == await left(pool, cid)       # at the commit, not at the next resync
        target = lane(cid, Sink(), concurrency=2, batch_size=10, backlog=backlog)
        retry = RetryWorker(pool, lambda: {cid: target}, metrics, instance="t-gauge", backlog=backlog)
        assert await retry.retry(target) == 40
        assert gauge() == 0 == await left(pool, cid)
    finally:
        await store.close()
