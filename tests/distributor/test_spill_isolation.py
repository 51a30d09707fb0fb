"""The shared spill store under poison rows (issue 13, finding 1): a row PostgreSQL refuses is set
aside as a dead letter and every other tenant's rows are written; nothing waits behind it forever.

Real PostgreSQL with the project's migrations; rows are built directly (bypassing the sinks, which
clean their texts) to prove the store holds even when a value from outside slips through.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from distributor.delivery.spill import SpillRow, SpillStore
from distributor.sinks.base import Outgoing


@pytest.fixture
def pool(migrated_pool: asyncpg.Pool) -> asyncpg.Pool:
    return migrated_pool


async def consumer(pool: asyncpg.Pool) -> str:
    org = await pool.fetchval("INSERT INTO organizations (name) VALUES ($1) RETURNING id", f"o-{uuid.uuid4().hex}")
    return str(await pool.fetchval(
        "INSERT INTO consumers (organization_id, name, kind, url) VALUES ($1, 'c', 'http', 'https://example.org/h')"
        " RETURNING id", org))


def row(consumer_id: str, n: int, **changes: object) -> SpillRow:
    r = SpillRow(consumer_id, Outgoing(f"m-{uuid.uuid4().hex}-{n}", b'{"n": %d}' % n, {"device": "d"}), 1,
                 "HTTP 503", 503, 0.0)
    for key, value in changes.items():
        setattr(r, key, value)
    return r


async def test_poison_rows_are_set_aside_and_every_other_row_is_stored(pool: asyncpg.Pool) -> None:
    events: list[tuple[str, str, int]] = []
    store = SpillStore(pool, max_backoff_s=0.2, on_set_aside=lambda t, o, n: events.append((t, o, n)))
    await store.start()
    try:
        tenant_a, tenant_b = await consumer(pool), await consumer(pool)
        gone = await consumer(pool)
        await pool.execute("DELETE FROM consumers WHERE id = $1", gone)   # deleted while its rows wait
        poison = row(tenant_a, 1, error="answer with a NUL \x00 byte", response="\x00" * 10)
        refused_dead = row(tenant_a, 2, dead_reason="refused by the consumer", response="bad \x00 body")
        fine = [row(tenant_b, 10 + i) for i in range(20)]
        orphan = row(gone, 3)
        futures = [store.add([poison]), store.add(fine[:10]), store.add([refused_dead, orphan]), store.add(fine[10:])]
        async with asyncio.timeout(5):
            await asyncio.gather(*futures)
        pending = {r["message_id"] for r in await pool.fetch("SELECT message_id FROM pending_deliveries")}
        assert pending >= {r.item.message_id for r in fine}
        dead = {r["message_id"]: r for r in await pool.fetch("SELECT * FROM dead_letters")}
        assert dead[poison.item.message_id]["reason"].startswith("could not be stored for retry: ")
        assert dead[poison.item.message_id]["last_error"] == "answer with a NUL \ufffd byte"
        assert dead[refused_dead.item.message_id]["last_response"] == "bad \ufffd body"
        assert orphan.item.message_id not in pending and orphan.item.message_id not in dead
        assert sorted(events) == [("dead_letters", "set_aside", 1)] * 2 + [("pending_deliveries", "dropped", 1)]
    finally:
        await store.close()


async def test_a_row_not_even_a_dead_letter_takes_is_kept_apart_and_others_still_flow(pool: asyncpg.Pool) -> None:
    store = SpillStore(pool, max_backoff_s=0.2)
    await store.start()
    try:
        cid = await consumer(pool)
        hopeless = row(cid, 1)
        hopeless.item = Outgoing(hopeless.item.message_id, "not bytes", {})  # type: ignore[arg-type]
        stuck = store.add([hopeless])
        later = [store.add([row(cid, 100 + i)]) for i in range(3)]
        async with asyncio.timeout(5):
            await asyncio.gather(*later)
        await asyncio.sleep(0.5)           # retried meanwhile, still refused: never acknowledged, never dropped
        assert not stuck.done() and store.backlog == 1
        assert await pool.fetchval("SELECT count(*) FROM pending_deliveries WHERE consumer_id = $1", cid) == 3
    finally:
        await store.close()
