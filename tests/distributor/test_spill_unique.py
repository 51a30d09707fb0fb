"""One pending delivery per (consumer, message) (issue 14, finding 8), on real PostgreSQL.

After a SIGKILL the broker redelivers messages whose spill had committed but whose acknowledgement was
lost; they are spilled again. Before, the COPY wrote them a second time (1,617 extra rows measured). Now a
unique index holds and the spill store skips such rows (and says how many rows each consumer really
gained); dead-letter replay skips them too; migration 0008 removes duplicates already stored.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from importlib import resources

import asyncpg
import pytest

from distributor.delivery.spill import SpillRow, SpillStore
from distributor.sinks.base import Outgoing
from registry.dead_letters import DeadLetterFilter, replay
from tests.distributor.test_retry_drain import consumer


@pytest.fixture
def pool(migrated_pool: asyncpg.Pool) -> asyncpg.Pool:
    return migrated_pool


def row(cid: str, message: str, **changes: object) -> SpillRow:
    r = SpillRow(cid, Outgoing(message, b'{"m": "%s"}' % message.encode(), {}), 0, "queue full", None)
    for key, value in changes.items():
        setattr(r, key, value)
    return r


async def pending_ids(pool: asyncpg.Pool, cid: str) -> list[str]:
    return [r["message_id"] for r in await pool.fetch(
        "SELECT message_id FROM pending_deliveries WHERE consumer_id = $1 ORDER BY id", cid)]


async def test_a_message_spilled_again_is_stored_once_and_counted_once(pool: asyncpg.Pool) -> None:
    stored: Counter[str] = Counter()
    store = SpillStore(pool, on_stored=stored.update)
    await store.start()
    try:
        cid, other = await consumer(pool), await consumer(pool)
        await asyncio.wait_for(store.add([row(cid, f"m{i}") for i in range(10)]), 5)
        assert stored == {cid: 10}
        # the redelivered copies (and a copy twice in one batch), between rows that are new
        again = [row(cid, "m3"), row(cid, "new1"), row(other, "m3"), row(cid, "m7"), row(cid, "new1")]
        await asyncio.wait_for(store.add(again), 5)
        assert await pending_ids(pool, cid) == [f"m{i}" for i in range(10)] + ["new1"]
        assert await pending_ids(pool, other) == ["m3"]
        assert stored == {cid: 11, other: 1}
    finally:
        await store.close()


async def test_conflicts_and_a_poison_row_in_one_batch(pool: asyncpg.Pool) -> None:
    store = SpillStore(pool, max_backoff_s=0.2)
    await store.start()
    try:
        cid = await consumer(pool)
        await asyncio.wait_for(store.add([row(cid, "m1")]), 5)
        batch = [row(cid, "m1"), row(cid, "m2", error="NUL \x00 in a reason"), row(cid, "m3")]
        await asyncio.wait_for(store.add(batch), 5)
        assert await pending_ids(pool, cid) == ["m1", "m3"]
        dead = await pool.fetchval("SELECT reason FROM dead_letters WHERE consumer_id = $1 AND message_id = 'm2'",
                                   cid)
        assert dead.startswith("could not be stored for retry: ")
    finally:
        await store.close()


async def test_replay_of_a_message_already_pending_does_not_fail(pool: asyncpg.Pool) -> None:
    cid = await consumer(pool)
    org = str(await pool.fetchval("SELECT organization_id FROM consumers WHERE id = $1", cid))
    await pool.execute("INSERT INTO pending_deliveries (consumer_id, message_id, body) VALUES ($1, 'm1', 'x')", cid)
    for message in ("m1", "m1", "m2"):
        await pool.execute(
            "INSERT INTO dead_letters (consumer_id, message_id, body, attempts, reason, first_failed_at)"
            " VALUES ($1, $2, 'x', 3, 'gave up', now())", cid, message)
    async with pool.acquire() as conn:
        assert await replay(conn, DeadLetterFilter(organization_id=org, consumer_id=cid)) == 3
    assert sorted(await pending_ids(pool, cid)) == ["m1", "m2"]
    assert await pool.fetchval("SELECT count(*) FROM dead_letters WHERE consumer_id = $1", cid) == 0


async def test_the_migration_removes_duplicates_already_stored(pool: asyncpg.Pool) -> None:
    sql = resources.files("registry.migrations").joinpath("0008_pending_unique.sql").read_text()
    cid = await consumer(pool)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("DROP INDEX pending_deliveries_consumer_message_key")   # the table as it was
        await conn.executemany(
            "INSERT INTO pending_deliveries (consumer_id, message_id, body, attempts) VALUES ($1, $2, 'x', $3)",
            [(cid, m, n) for n, m in enumerate(["m1", "m2", "m1", "m3", "m2", "m1"])])
        await conn.execute(sql)
        rows = await conn.fetch("SELECT message_id, attempts FROM pending_deliveries WHERE consumer_id = $1"
                                " ORDER BY id", cid)
        assert [(r["message_id"], r["attempts"]) for r in rows] == [("m1", 0), ("m2", 1), ("m3", 3)]  # first kept
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute("INSERT INTO pending_deliveries (consumer_id, message_id, body) VALUES ($1, 'm1', 'x')",
                               cid)
