"""The durable spill: deliveries that did not happen at once go to ``pending_deliveries`` (or, when
the consumer refused them for good, straight to ``dead_letters``).

Writes are group-committed: rows from many messages go into one COPY, and each caller's
future resolves only when that commit is done ("done" in DESIGN.md). When PostgreSQL is
unavailable the batch is retried with backoff and the futures stay pending, so the source
never acks what is not safe.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog

from distributor.sinks.base import Outgoing

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


class SpillStore:
    def __init__(self, pool: asyncpg.Pool, max_batch: int = 1000, max_backoff_s: float = 5.0) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._max_backoff_s = max_backoff_s
        self._rows: list[tuple[SpillRow, asyncio.Future[None] | None]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.rows_written = 0
        self.failures = 0

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
        return len(self._rows)

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            await self._wake.wait()
            batch = self._rows[: self._max_batch]
            try:
                await self._write([row for row, _ in batch])
            except Exception as exc:  # never let the spill task die: callers wait on it to ack
                self.failures += 1
                log.error("spill write failed; retrying", error=str(exc), error_type=type(exc).__name__,
                          rows=len(batch), backoff_s=backoff, message_id=batch[0][0].item.message_id)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)
                continue
            backoff = 0.05
            del self._rows[: len(batch)]
            self.rows_written += len(batch)
            for _, fut in batch:
                if fut is not None and not fut.done():
                    fut.set_result(None)
            if not self._rows:
                self._wake.clear()

    async def _write(self, rows: list[SpillRow]) -> None:
        now = datetime.now(UTC)
        pending, dead = [], []
        for r in rows:
            history = [attempt_record(r.error, r.status, now)] if r.attempts else []
            if r.dead_reason is None:
                pending.append((r.consumer_id, r.item.message_id, r.item.body, r.item.topic_vars, r.attempts,
                                r.error, r.status, now + timedelta(seconds=r.delay_s), history))
            else:
                dead.append((r.consumer_id, r.item.message_id, r.item.body, r.item.topic_vars, r.attempts, history,
                             r.error, r.status, r.response, r.dead_reason, now))
        async with self._pool.acquire() as conn, conn.transaction():
            if pending:
                await conn.copy_records_to_table("pending_deliveries", records=pending, columns=PENDING_COLUMNS)
            if dead:
                await conn.copy_records_to_table("dead_letters", records=dead, columns=DEAD_COLUMNS)

    async def drain(self, timeout: float) -> bool:
        """Wait until everything queued is written; False if the timeout passed first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._rows and loop.time() < deadline:
            await asyncio.sleep(0.01)
        return not self._rows

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
