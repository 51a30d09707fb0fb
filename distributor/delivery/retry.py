"""Retries deliveries from PostgreSQL until delivered or dead; safe with several instances.

Rows are claimed with a lease (``retry_store``); an instance that dies mid-send lets its lease
expire, and one that starts again under the same name takes its old claims back at once.

Each consumer drains in a task of its own, so a slow consumer never delays another's retries, and
at the consumer's capacity: a pass claims up to a few rounds of work and sends it in chunks of the
lane's batch (``batch_size`` for HTTP, full batches), as many at once as the consumer's
``options.concurrency`` allows: the lane's ``slots``, shared with live sends, which go first. A pass starts no send
that could outlive its lease. The first failure stops the pass (later chunks are released for the
next one; in strict order they must not overtake the failed one).

The circuit breaker decides when an open circuit is probed (``policy``: sooner while a backlog
exists); a successful probe closes it and makes the consumer's whole backlog due at once, so a
recovered consumer does not wait out backoffs grown during its outage. Consumers with nothing
pending (``Backlog``, resynchronised from the table every ``backlog_every_s``) cost no query.

During a database outage the passes fail: that is logged once when it starts and once when it ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from distributor.delivery.backlog import Backlog
from distributor.delivery.lane import ConsumerLane
from distributor.delivery.outage import Outage
from distributor.delivery.policy import CLOSED, HALF_OPEN
from distributor.delivery.retry_store import (
    BACKLOG,
    BURY,
    CLAIM,
    CLAIM_STRICT,
    DUE_NOW,
    RELEASE,
    RELEASE_MINE,
    RESCHEDULE,
    Deletions,
)
from distributor.delivery.spill import attempt_record
from distributor.metrics import Metrics
from distributor.sinks.base import REPLAY, DeliveryError, Outgoing
from registry.batches import is_data_error, reason

log = structlog.get_logger("iotd.delivery.retry")

ROUNDS = 4                # a pass claims up to this many rounds of the consumer's concurrency
MIN_CLAIM = 200           # ... and at least this many rows (one claim and one delete per 200 single messages)
LEASE_MARGIN_S = 5.0      # a send starts only if it ends (timeout_s) this long before the lease does
SQL_CONNECTIONS = 3       # of the pool's connections, the retry worker uses at most this many at once
_DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


def chunked(rows: list[asyncpg.Record], size: int) -> list[list[asyncpg.Record]]:
    """Consecutive rows in chunks of at most ``size``; a replay's rows never share a chunk (one HTTP request)
    with other rows, so a request's ``X-Iotd-Replay`` speaks for every message in it."""
    chunks: list[list[asyncpg.Record]] = []
    mark: object = None
    for row in rows:
        replay = row["topic_vars"].get(REPLAY)
        if not chunks or len(chunks[-1]) >= size or replay != mark:
            chunks.append([])
            mark = replay
        chunks[-1].append(row)
    return chunks


class RetryWorker:
    def __init__(self, pool: asyncpg.Pool, lanes: Callable[[], dict[str, ConsumerLane]], metrics: Metrics, *,
                 instance: str, poll_s: float = 1.0, lease_s: float = 60.0, claim: int = 2000,
                 retention_days: float = 30.0, backlog_every_s: float = 5.0, backlog: Backlog | None = None) -> None:
        self._pool = pool
        self._lanes = lanes
        self._metrics = metrics
        self._instance = instance
        self._poll_s = poll_s
        self._lease_s = lease_s
        self._claim = claim
        self._retention_days = retention_days
        self._backlog_every_s = backlog_every_s
        self.backlog = backlog or Backlog(metrics.pending)
        self._task: asyncio.Task[None] | None = None
        self._passes: dict[str, asyncio.Task[None]] = {}
        self._known_oldest: set[str] = set()
        self._sql = asyncio.Semaphore(SQL_CONNECTIONS)
        self._deletions = Deletions(self._execute, self.backlog)
        self._outage = Outage(log, "retry passes failing; will keep trying", "retry passes work again")

    async def start(self) -> None:
        try:
            await self._execute(RELEASE_MINE, self._instance)    # claims left by this instance's last run
        except _DB_ERRORS as exc:
            log.warning("could not take back earlier claims; they return when their lease ends", error=reason(exc))
        self._task = asyncio.create_task(self._run(), name="retry-worker")

    async def close(self) -> None:
        tasks = [t for t in (self._task, *self._passes.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:  # best effort: delivered rows deleted, claims given back for the next instance or run
            async with asyncio.timeout(2):
                await self._deletions.settle()
                await self._execute(RELEASE_MINE, self._instance)
        except Exception as exc:
            log.warning("retry claims not settled at shutdown; they return when their lease ends", error=reason(exc))

    # --- scheduling ----------------------------------------------------------------------------
    async def _run(self) -> None:
        next_backlog = next_purge = 0.0
        while True:
            now = time.monotonic()
            try:
                if now >= next_backlog:
                    await self.update_backlog()
                    next_backlog = now + self._backlog_every_s
                if now >= next_purge:
                    await self.purge()
                    next_purge = now + 3600
            except Exception as exc:
                self._failed(exc)
            self._passes = {cid: t for cid, t in self._passes.items() if not t.done()}
            for cid, lane in list(self._lanes().items()):
                if cid not in self._passes and self.backlog.count(cid) and lane.breaker.may_probe(now, True):
                    self._passes[cid] = asyncio.create_task(self._drain(lane), name=f"retry-{cid[:8]}")
            await asyncio.sleep(self._poll_s)

    async def _drain(self, lane: ConsumerLane) -> None:
        """Passes for one consumer while they deliver everything they claim."""
        try:
            while True:
                delivered = await self._retry_isolated(lane)
                self._outage.ok()
                if not delivered or lane.breaker.state != CLOSED:
                    return
        except Exception as exc:
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        if self._outage.failed(reason(exc)) and not isinstance(exc, _DB_ERRORS):
            log.error("retry pass failed unexpectedly", exc_info=exc)

    async def _retry_isolated(self, lane: ConsumerLane) -> int:
        """One consumer's pass; data PostgreSQL refuses for this consumer never stops the others' passes."""
        try:
            return await self.retry(lane)
        except Exception as exc:
            if not is_data_error(exc):
                raise
            log.error("retry pass for one consumer failed; the others go on", consumer=lane.consumer.id,
                      error=reason(exc))
            return 0

    # --- one pass ------------------------------------------------------------------------------
    def claim_size(self, lane: ConsumerLane) -> int:
        """Rows per pass: a few rounds of the consumer's concurrency in full batches (at least one batch)."""
        return max(lane.batch, min(max(lane.concurrency * lane.batch * ROUNDS, MIN_CLAIM), self._claim))

    def lease_for(self, lane: ConsumerLane) -> float:
        """Long enough for at least one send of the consumer to start and time out within it."""
        return max(self._lease_s, 2 * lane.consumer.timeout_s + 2 * LEASE_MARGIN_S)

    async def retry(self, lane: ConsumerLane) -> int:
        """One pass for one consumer: claim due rows and send them. Returns how many were delivered."""
        cid = lane.consumer.id
        probing = lane.breaker.state == HALF_OPEN
        lease = self.lease_for(lane)
        limit = lane.batch if probing else self.claim_size(lane)
        if lane.strict:
            rows = await self._fetch(CLAIM_STRICT, cid, limit, lease, self._instance, probing)
        else:
            rows = await self._fetch(CLAIM, cid, limit, lease, self._instance)
        if not rows:
            return 0
        rows = sorted(rows, key=lambda r: r["id"])
        start_by = asyncio.get_running_loop().time() + lease - lane.consumer.timeout_s - LEASE_MARGIN_S
        stop = [False]
        chunks = chunked(rows, lane.batch)
        outcomes = await asyncio.gather(*(self._send(lane, chunk, start_by, stop) for chunk in chunks))
        delivered = sum(len(chunk) for chunk, outcome in zip(chunks, outcomes, strict=True) if outcome is True)
        unsent = [r["id"] for chunk, outcome in zip(chunks, outcomes, strict=True) if outcome is False
                  for r in chunk]
        for chunk, outcome in zip(chunks, outcomes, strict=True):
            if isinstance(outcome, DeliveryError):
                await self._after_failure(lane, chunk, outcome)
        if unsent:
            await self._execute(RELEASE, unsent)
        if probing and delivered:
            await self._execute(DUE_NOW, cid)
        await self._deletions.settle()
        return delivered

    async def _send(self, lane: ConsumerLane, chunk: list[asyncpg.Record], start_by: float,
                    stop: list[bool]) -> bool | DeliveryError:
        """True when delivered, the error when it failed, False when not sent (stopped, or too late to start)."""
        async with lane.slots.backlog():
            if stop[0] or asyncio.get_running_loop().time() > start_by:
                return False
            try:
                await lane.send([Outgoing(r["message_id"], r["body"], r["topic_vars"]) for r in chunk])
            except DeliveryError as exc:
                stop[0] = True
                lane.failed(len(chunk), exc)
                self._metrics.retries.labels(lane.consumer.id, "failed").inc(len(chunk))
                return exc
        lane.succeeded(len(chunk))
        self._metrics.retries.labels(lane.consumer.id, "ok").inc(len(chunk))
        self._deletions.add(lane.consumer.id, [r["id"] for r in chunk])
        return True

    async def _after_failure(self, lane: ConsumerLane, chunk: list[asyncpg.Record], exc: DeliveryError) -> None:
        now = datetime.now(UTC)
        record = attempt_record(exc.detail, exc.status, now)
        bury: dict[str, list[int]] = {}
        again: list[tuple[int, int, float]] = []
        for r in chunk:
            attempts = r["attempts"] + 1
            age = (now - r["created_at"]).total_seconds()
            why = "refused by the consumer" if not exc.retryable else lane.policy.exhausted(attempts, age)
            if why is None:
                again.append((r["id"], attempts, lane.policy.backoff(attempts, exc.retry_after)))
            else:
                bury.setdefault(why, []).append(r["id"])
        if again:
            await self._execute(RESCHEDULE, [a[0] for a in again], [a[1] for a in again], exc.detail,
                                exc.status, record, [a[2] for a in again])
        for why, ids in bury.items():
            await self._execute(BURY, ids, record, exc.detail, exc.status, exc.response, why)
            self.backlog.removed(lane.consumer.id, len(ids))
            self._metrics.dead_letters.labels(lane.consumer.id).inc(len(ids))
            log.error("delivery given up; dead-lettered", consumer=lane.consumer.id, count=len(ids), reason=why,
                      message_id=next(r["message_id"] for r in chunk if r["id"] == ids[0]))

    # --- housekeeping --------------------------------------------------------------------------
    async def update_backlog(self) -> None:
        """Resynchronise the pending counts (and ``iotd_pending_deliveries``) with the table."""
        self.backlog.resync_started()
        try:
            rows = await self._fetch(BACKLOG)
        except BaseException:
            self.backlog.resync_failed()
            raise
        self.backlog.resynced({r["consumer_id"]: int(r["n"]) for r in rows})
        seen = set()
        for r in rows:
            seen.add(r["consumer_id"])
            self._metrics.pending_oldest.labels(r["consumer_id"]).set(float(r["oldest"]))
        for cid in self._known_oldest - seen:
            self._metrics.pending_oldest.labels(cid).set(0)
        self._known_oldest = seen
        for cid, lane in self._lanes().items():
            self._metrics.queue_depth.labels(cid).set(lane.depth)

    async def purge(self) -> None:
        deleted = await self._execute(
            "DELETE FROM dead_letters WHERE dead_at < now() - make_interval(secs => $1)",
            self._retention_days * 86400)
        if deleted != "DELETE 0":
            log.info("old dead letters removed", result=deleted, retention_days=self._retention_days)

    async def _execute(self, query: str, *args: Any) -> str:
        async with self._sql:
            result: str = await self._pool.execute(query, *args)
            return result

    async def _fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async with self._sql:
            rows: list[asyncpg.Record] = await self._pool.fetch(query, *args)
            return rows
