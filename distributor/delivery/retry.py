"""Retries deliveries from PostgreSQL until delivered or dead; safe with several instances.

Rows are claimed with a lease: ``FOR UPDATE SKIP LOCKED`` picks due rows no other instance is
claiming, and pushing ``next_attempt_at`` forward by the lease hides them from the others
while we send, without holding a transaction open. An instance that dies mid-send simply lets
its lease expire. Each consumer is retried through its own lane's sink and circuit breaker:
an open circuit waits out its cooldown, then one batch probes it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
import structlog

from distributor.delivery.lane import ConsumerLane
from distributor.delivery.spill import attempt_record
from distributor.metrics import Metrics
from distributor.sinks.base import DeliveryError, Outgoing
from registry.batches import is_data_error, reason

log = structlog.get_logger("iotd.delivery.retry")

CLAIM = """
UPDATE pending_deliveries p SET next_attempt_at = now() + make_interval(secs => $3), claimed_by = $4
WHERE p.id IN (SELECT id FROM pending_deliveries WHERE consumer_id = $1 AND next_attempt_at <= now()
               ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)
RETURNING p.id, p.message_id, p.body, p.topic_vars, p.attempts, p.created_at
"""
RESCHEDULE = """
UPDATE pending_deliveries p SET attempts = x.attempts, next_attempt_at = now() + make_interval(secs => x.delay),
    last_error = $3, last_status = $4, claimed_by = NULL, history = p.history || jsonb_build_array($5::jsonb)
FROM unnest($1::bigint[], $2::int[], $6::float8[]) AS x(id, attempts, delay) WHERE p.id = x.id
"""
BURY = """
WITH moved AS (DELETE FROM pending_deliveries WHERE id = ANY($1::bigint[]) RETURNING *)
INSERT INTO dead_letters (consumer_id, message_id, body, topic_vars, attempts, history, last_error, last_status,
                          last_response, reason, first_failed_at)
SELECT consumer_id, message_id, body, topic_vars, attempts + 1, history || jsonb_build_array($2::jsonb), $3, $4, $5,
       $6, created_at FROM moved
"""
RELEASE = "UPDATE pending_deliveries SET next_attempt_at = now(), claimed_by = NULL WHERE id = ANY($1::bigint[])"
BACKLOG = """
SELECT consumer_id::text AS consumer_id, count(*) AS n, extract(epoch FROM now() - min(created_at)) AS oldest
FROM pending_deliveries GROUP BY consumer_id
"""


class RetryWorker:
    def __init__(self, pool: asyncpg.Pool, lanes: Callable[[], dict[str, ConsumerLane]], metrics: Metrics, *,
                 instance: str, poll_s: float = 1.0, lease_s: float = 60.0, claim: int = 200,
                 retention_days: float = 30.0, backlog_every_s: float = 5.0) -> None:
        self._pool = pool
        self._lanes = lanes
        self._metrics = metrics
        self._instance = instance
        self._poll_s = poll_s
        self._lease_s = lease_s
        self._claim = claim
        self._retention_days = retention_days
        self._backlog_every_s = backlog_every_s
        self._task: asyncio.Task[None] | None = None
        self._known_backlog: set[str] = set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="retry-worker")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        next_backlog = next_purge = 0.0
        while True:
            progressed = False
            try:
                now = time.monotonic()
                for lane in list(self._lanes().values()):
                    if lane.breaker.may_probe(now):
                        progressed |= await self._retry_isolated(lane) > 0
                if now >= next_backlog:
                    await self.update_backlog()
                    next_backlog = now + self._backlog_every_s
                if now >= next_purge:
                    await self.purge()
                    next_purge = now + 3600
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("retry pass failed; will try again", error=str(exc))
            except Exception:
                log.exception("retry pass failed unexpectedly; will try again")
            if not progressed:
                await asyncio.sleep(self._poll_s)

    async def _retry_isolated(self, lane: ConsumerLane) -> int:
        """One consumer's pass; data PostgreSQL refuses for this consumer never stops the others' passes
        (an outage still ends the whole pass: every consumer would fail the same way)."""
        try:
            return await self.retry(lane)
        except Exception as exc:
            if not is_data_error(exc):
                raise
            log.error("retry pass for one consumer failed; the others go on", consumer=lane.consumer.id,
                      error=reason(exc))
            return 0

    async def retry(self, lane: ConsumerLane) -> int:
        """One pass for one consumer: claim due rows and send them. Returns how many were delivered."""
        probing = lane.breaker.state == "half-open"
        rows = await self._pool.fetch(CLAIM, lane.consumer.id, lane.batch if probing else self._claim,
                                      self._lease_s, self._instance)
        if not rows:
            return 0
        rows = sorted(rows, key=lambda r: r["id"])
        delivered = 0
        for start in range(0, len(rows), lane.batch):
            chunk = rows[start : start + lane.batch]
            try:
                await lane.send([Outgoing(r["message_id"], r["body"], r["topic_vars"]) for r in chunk])
            except DeliveryError as exc:
                lane.failed(len(chunk), exc)
                self._metrics.retries.labels(lane.consumer.id, "failed").inc(len(chunk))
                await self._after_failure(lane, chunk, exc)
                rest = [r["id"] for r in rows[start + lane.batch :]]
                if rest:
                    await self._pool.execute(RELEASE, rest)
                break
            await self._pool.execute("DELETE FROM pending_deliveries WHERE id = ANY($1::bigint[])",
                                     [r["id"] for r in chunk])
            lane.succeeded(len(chunk))
            self._metrics.retries.labels(lane.consumer.id, "ok").inc(len(chunk))
            delivered += len(chunk)
        return delivered

    async def _after_failure(self, lane: ConsumerLane, chunk: list[asyncpg.Record], exc: DeliveryError) -> None:
        now = datetime.now(UTC)
        record = attempt_record(exc.detail, exc.status, now)
        bury: dict[str, list[int]] = {}
        again: list[tuple[int, int, float]] = []
        for r in chunk:
            attempts = r["attempts"] + 1
            age = (now - r["created_at"]).total_seconds()
            reason = "refused by the consumer" if not exc.retryable else lane.policy.exhausted(attempts, age)
            if reason is None:
                again.append((r["id"], attempts, lane.policy.backoff(attempts, exc.retry_after)))
            else:
                bury.setdefault(reason, []).append(r["id"])
        if again:
            await self._pool.execute(RESCHEDULE, [a[0] for a in again], [a[1] for a in again], exc.detail,
                                     exc.status, record, [a[2] for a in again])
        for reason, ids in bury.items():
            await self._pool.execute(BURY, ids, record, exc.detail, exc.status, exc.response, reason)
            self._metrics.dead_letters.labels(lane.consumer.id).inc(len(ids))
            log.error("delivery given up; dead-lettered", consumer=lane.consumer.id, count=len(ids), reason=reason,
                      message_id=next(r["message_id"] for r in chunk if r["id"] == ids[0]))

    async def update_backlog(self) -> None:
        rows = await self._pool.fetch(BACKLOG)
        seen = set()
        for r in rows:
            seen.add(r["consumer_id"])
            self._metrics.pending.labels(r["consumer_id"]).set(r["n"])
            self._metrics.pending_oldest.labels(r["consumer_id"]).set(float(r["oldest"]))
        for cid in self._known_backlog - seen:
            self._metrics.pending.labels(cid).set(0)
            self._metrics.pending_oldest.labels(cid).set(0)
        self._known_backlog = seen
        for cid, lane in self._lanes().items():
            self._metrics.queue_depth.labels(cid).set(lane.depth)

    async def purge(self) -> None:
        deleted = await self._pool.execute(
            "DELETE FROM dead_letters WHERE dead_at < now() - make_interval(secs => $1)",
            self._retention_days * 86400)
        if deleted != "DELETE 0":
            log.info("old dead letters removed", result=deleted, retention_days=self._retention_days)
