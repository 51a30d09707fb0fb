"""The per-consumer delivery log departments read: counts, last success, last failure and why.

Lanes and the retry worker update a ``ConsumerStats`` in memory; ``StatsWriter`` folds them into
``consumer_stats`` once a second (one statement per flush, not one per message). A consumer's row
PostgreSQL refuses is logged and dropped without holding back the other consumers' rows
(``registry.batches``); the failure reason is stored cleaned and bounded (``registry.storable``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import structlog

from registry import storable
from registry.batches import reason, write_isolating
from registry.periodic import run_every

log = structlog.get_logger("iotd.delivery.stats")


@dataclass(slots=True)
class ConsumerStats:
    delivered: int = 0
    failed: int = 0
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_failure_status: int | None = None
    last_failure_reason: str | None = None
    circuit: str = "closed"
    dirty: bool = False

    def success(self, n: int) -> None:
        self.delivered += n
        self.last_success_at = datetime.now(UTC)
        self.dirty = True

    def failure(self, n: int, reason: str, status: int | None) -> None:
        self.failed += n
        self.last_failure_at = datetime.now(UTC)
        self.last_failure_reason = storable.text(reason, 500)
        self.last_failure_status = status
        self.dirty = True

    def take(self) -> ConsumerStats:
        """The counts since the last flush (the timestamps and reasons stay)."""
        snapshot = ConsumerStats(self.delivered, self.failed, self.last_success_at, self.last_failure_at,
                                 self.last_failure_status, self.last_failure_reason, self.circuit)
        self.delivered = self.failed = 0
        self.dirty = False
        return snapshot


class StatsWriter:
    def __init__(self, pool: asyncpg.Pool, source: Callable[[], dict[str, ConsumerStats]],
                 interval_s: float = 1.0) -> None:
        self._pool = pool
        self._source = source
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(run_every(self._interval_s, self.flush, log, "consumer stats flush"),
                                         name="consumer-stats")

    async def flush(self) -> None:
        taken = {cid: s.take() for cid, s in self._source().items() if s.dirty}
        if not taken:
            return
        try:
            async with self._pool.acquire() as conn:
                for (cid, _), exc in await write_isolating(conn, list(taken.items()), _write):
                    log.error("PostgreSQL refused a consumer's delivery-log row; dropped", consumer=cid,
                              error=reason(exc))
        except BaseException:
            for cid, t in taken.items():  # put the counts back for the next flush
                live = self._source().get(cid)
                if live is not None:
                    live.delivered += t.delivered
                    live.failed += t.failed
                    live.dirty = True
            raise

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await self.flush()
        except Exception as exc:
            log.warning("final consumer stats flush failed", error=str(exc))


async def _write(conn: asyncpg.Connection, rows: Sequence[tuple[str, ConsumerStats]]) -> None:
    await conn.execute(
        "INSERT INTO consumer_stats AS c (consumer_id, delivered, failed, last_success_at, last_failure_at,"
        " last_failure_status, last_failure_reason, circuit)"
        " SELECT x.* FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::timestamptz[],"
        " $5::timestamptz[], $6::int[], $7::text[], $8::text[])"
        " AS x(consumer_id, delivered, failed, last_success_at, last_failure_at, last_failure_status,"
        " last_failure_reason, circuit)"
        " WHERE EXISTS (SELECT 1 FROM consumers k WHERE k.id = x.consumer_id)"
        " ON CONFLICT (consumer_id) DO UPDATE SET delivered = c.delivered + EXCLUDED.delivered,"
        " failed = c.failed + EXCLUDED.failed,"
        " last_success_at = COALESCE(EXCLUDED.last_success_at, c.last_success_at),"
        " last_failure_at = COALESCE(EXCLUDED.last_failure_at, c.last_failure_at),"
        " last_failure_status = COALESCE(EXCLUDED.last_failure_status, c.last_failure_status),"
        " last_failure_reason = COALESCE(EXCLUDED.last_failure_reason, c.last_failure_reason),"
        " circuit = EXCLUDED.circuit, updated_at = now()",
        [cid for cid, _ in rows], [t.delivered for _, t in rows], [t.failed for _, t in rows],
        [t.last_success_at for _, t in rows], [t.last_failure_at for _, t in rows],
        [t.last_failure_status for _, t in rows], [t.last_failure_reason for _, t in rows],
        [t.circuit for _, t in rows],
    )
