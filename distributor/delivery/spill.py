"""The durable spill: deliveries that did not happen at once go to ``pending_deliveries`` (or, when
the consumer refused them for good, straight to ``dead_letters``).

Writes are group-committed: rows from many messages go into one COPY, and each caller's
future resolves only when that commit is done ("done" in DESIGN.md). When PostgreSQL is
unavailable the batch is retried with backoff and the futures stay pending, so the source
never acks what is not safe.

One row PostgreSQL refuses never blocks the others (``registry.batches``): the batch is split,
the rest is written, and the refused row is set aside as a dead letter with every outside value
cleaned and the reason kept ("could not be stored for retry: ..."), so it can still be replayed.
A row whose consumer was deleted meanwhile is dropped (there is nobody to deliver to). A row
that cannot even be stored as a dead letter stays in memory, apart from the batch, and is tried
again with backoff; its message is not acknowledged meanwhile, so a restart redelivers it.
Every set-aside row is counted (``on_set_aside``) and logged once.

A (consumer, message) is pending at most once (unique index, migration 0008): after a SIGKILL the
broker redelivers messages whose spill had committed but whose acknowledgement was lost, and they
are spilled again. Rows go in with COPY (the fastest way, measured) inside a savepoint; only when
that COPY meets an existing row is the batch written again with ``INSERT ... ON CONFLICT DO NOTHING``,
which skips it. ``on_stored`` hears how many rows each consumer really gained, after the commit.

While PostgreSQL is unavailable the store logs once when writes start failing and once when they
work again (``outage.Outage``), not on every retry.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog

from distributor import waiting
from distributor.delivery.outage import Outage
from distributor.sinks.base import Outgoing
from registry import storable
from registry.batches import reason, write_isolating

log = structlog.get_logger("iotd.delivery.spill")

PENDING_COLUMNS = ("consumer_id", "message_id", "body", "topic_vars", "attempts", "last_error", "last_status",
                   "next_attempt_at", "history")
DEAD_COLUMNS = ("consumer_id", "message_id", "body", "topic_vars", "attempts", "history", "last_error",
                "last_status", "last_response", "reason", "first_failed_at")


@dataclass(slots=True)
class SpillRow:
    consumer_id: str
    item: Outgoing
    attempts: int                     # attempts made so far (0: never tried, e.g. queue full)
    error: str | None
    status: int | None
    delay_s: float = 0.0              # wait before the next attempt
    dead_reason: str | None = None    # set: a permanent refusal, kept as a dead letter
    response: str | None = None


def attempt_record(error: str | None, status: int | None, at: datetime) -> dict[str, Any]:
    return {"at": at.isoformat(), "error": error, "status": status}


Queued = tuple[SpillRow, "asyncio.Future[None] | None"]


def _consumer_gone(exc: BaseException) -> bool:
    """A foreign-key violation: the consumer was deleted after the row was queued; nobody to deliver to."""
    return getattr(exc, "sqlstate", None) == "23503"


def _set_aside(row: SpillRow, why: str) -> SpillRow:
    """The row as a dead letter, every outside value cleaned, carrying why it could not be kept as it was."""
    item = Outgoing(storable.text(row.item.message_id, storable.IDENTIFIER_TEXT), row.item.body,
                    {str(k): storable.text(v, storable.IDENTIFIER_TEXT) for k, v in row.item.topic_vars.items()})
    return replace(row, item=item, error=storable.optional_text(row.error), dead_reason=storable.text(
        f"could not be stored for retry: {why}"), response=storable.optional_text(row.response, 256))


class SpillStore:
    def __init__(self, pool: asyncpg.Pool, max_batch: int = 1000, max_backoff_s: float = 5.0,
                 on_set_aside: Callable[[str, str, int], None] | None = None,
                 on_stored: Callable[[dict[str, int]], None] | None = None) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._max_backoff_s = max_backoff_s
        self._rows: list[Queued] = []
        self._quarantine: list[Queued] = []   # refused even as dead letters: retried apart from the rest
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._on_set_aside = on_set_aside or (lambda table, outcome, n: None)
        self._on_stored = on_stored or (lambda inserted: None)
        self._outage = Outage(log, "spill writes failing; retrying until PostgreSQL is back",
                              "spill writes work again")
        self.rows_written = 0
        self.failures = 0
        self.set_aside = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="spill-store")

    def add(self, rows: list[SpillRow]) -> asyncio.Future[None]:
        """Queue rows for the next group commit; the future resolves once they are durable."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not rows:
            done.set_result(None)
            return done
        for row in rows[:-1]:  # one future per call, carried by its last row
            self._rows.append((row, None))
        self._rows.append((rows[-1], done))
        self._wake.set()
        return done

    @property
    def backlog(self) -> int:
        return len(self._rows) + len(self._quarantine)

    async def _run(self) -> None:
        backoff = 0.05
        quarantine_due = 0.0
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            if not self._rows and loop.time() < quarantine_due:
                await asyncio.sleep(0.05)    # only set-aside rows are left: look again soon, new rows first
                continue
            queue = self._rows or self._quarantine
            batch = queue[: self._max_batch]
            try:
                unstorable = await self._write(batch)
            except Exception as exc:  # never let the spill task die: callers wait on it to ack
                self.failures += 1
                self._outage.failed(reason(exc), rows=len(batch), message_id=batch[0][0].item.message_id)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)
                continue
            self._outage.ok()
            backoff = 0.05
            del queue[: len(batch)]
            if unstorable:
                quarantine_due = loop.time() + self._max_backoff_s
                self._quarantine.extend(unstorable)
            kept = {id(row) for row, _ in unstorable}
            self.rows_written += len(batch) - len(unstorable)
            for row, fut in batch:
                if id(row) not in kept and fut is not None and not fut.done():
                    fut.set_result(None)
            if not self._rows and not self._quarantine:
                self._wake.clear()

    async def _write(self, batch: Sequence[Queued]) -> list[Queued]:
        """Write the batch, setting refused rows aside as dead letters; returns the rows that could not be
        stored at all (kept for a later try). Raises only when PostgreSQL is unavailable."""
        async with self._pool.acquire() as conn:
            inserted: Counter[str] = Counter()
            refused = await write_isolating(conn, batch, lambda c, rows: _store(c, rows, inserted))
            self._on_stored(dict(inserted))          # committed: before any caller's future resolves
            as_dead: list[tuple[Queued, Queued]] = []          # (the caller's row, its dead-letter form)
            for queued, exc in refused:
                row = queued[0]
                log.error("PostgreSQL refused a delivery row; set aside so the rest of the batch is stored",
                          consumer=row.consumer_id, message_id=row.item.message_id, error=reason(exc))
                if _consumer_gone(exc):
                    self._count("pending_deliveries" if row.dead_reason is None else "dead_letters", "dropped")
                else:
                    as_dead.append((queued, (_set_aside(row, reason(exc)), queued[1])))
            retried = await write_isolating(conn, [d for _, d in as_dead], lambda c, rows: _store(c, rows, Counter()))
        still = {id(q[0]): exc for q, exc in retried}
        kept: list[Queued] = []
        for original, dead in as_dead:
            why = still.get(id(dead[0]))
            if why is None:
                self._count("dead_letters", "set_aside")
            elif _consumer_gone(why):
                self._count("dead_letters", "dropped")
            else:
                log.error("a delivery cannot be stored even as a dead letter; kept in memory and retried",
                          consumer=original[0].consumer_id, message_id=original[0].item.message_id,
                          error=reason(why))
                kept.append(original)
        return kept

    def _count(self, table: str, outcome: str, n: int = 1) -> None:
        if n:
            self.set_aside += n
            self._on_set_aside(table, outcome, n)

    async def drain(self, timeout: float) -> bool:
        """Wait until everything queued is written; False if the timeout passed first."""
        return await waiting.until(lambda: not self._rows, waiting.deadline_in(timeout))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


INSERT_SKIPPING = f"""
WITH ins AS (
    INSERT INTO pending_deliveries ({", ".join(PENDING_COLUMNS)})
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::jsonb[], $5::int[], $6::text[], $7::int[],
                         $8::timestamptz[], $9::jsonb[])
    ON CONFLICT (consumer_id, message_id) DO NOTHING
    RETURNING consumer_id)
SELECT consumer_id::text AS consumer_id, count(*) AS n FROM ins GROUP BY consumer_id
"""


async def _insert_pending(conn: asyncpg.Connection, records: list[tuple[Any, ...]]) -> Counter[str]:
    """Insert pending rows, skipping any (consumer, message) already pending; returns rows inserted per consumer."""
    try:
        async with conn.transaction():       # a savepoint: a conflict undoes only this COPY
            await conn.copy_records_to_table("pending_deliveries", records=records, columns=PENDING_COLUMNS)
        return Counter(str(r[0]) for r in records)
    except asyncpg.UniqueViolationError:
        pass
    rows = await conn.fetch(INSERT_SKIPPING, *(list(column) for column in zip(*records, strict=True)))
    return Counter({r["consumer_id"]: r["n"] for r in rows})


async def _store(conn: asyncpg.Connection, rows: Sequence[Queued], inserted: Counter[str]) -> None:
    """Write one part of a batch; ``inserted`` gains its pending rows only once every statement succeeded."""
    now = datetime.now(UTC)
    pending, dead = [], []
    for r, _ in rows:
        history = [attempt_record(r.error, r.status, now)] if r.attempts else []
        if r.dead_reason is None:
            pending.append((r.consumer_id, r.item.message_id, r.item.body, r.item.topic_vars, r.attempts,
                            r.error, r.status, now + timedelta(seconds=r.delay_s), history))
        else:
            dead.append((r.consumer_id, r.item.message_id, r.item.body, r.item.topic_vars, r.attempts, history,
                         r.error, r.status, r.response, r.dead_reason, now))
    added = await _insert_pending(conn, pending) if pending else Counter()
    if dead:
        await conn.copy_records_to_table("dead_letters", records=dead, columns=DEAD_COLUMNS)
    inserted.update(added)
