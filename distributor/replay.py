"""Replay jobs (issue 17): stored messages re-delivered to a consumer in time order, marked as replays.

A job (a row of ``replays``, made by ``POST /consumers/{id}/replay`` or by a subscription made with
``backfill_from``) is claimed by one distributor instance with a lease, which every step renews. The job
reads the organization's stored messages a window at a time in (received_at, id) order
(``replay_plan.Window``), keeps those that go to the consumer (``replay_plan.wanted``), renders them in
the consumer's format and sends them through the consumer's lane: the lane's sink, its request slots
(as backlog sends, so live messages go first), its circuit breaker and statistics; a batch that fails
goes to the durable spill like a live one, from where the retry worker retries it and the retry policy
dead-letters it. Every message carries ``topic_vars["replay"] = <job id>``, which the HTTP sink sends as
``X-Iotd-Replay`` and the MQTT sink as the user property ``iotd-replay`` (kept through retries and dead
letters). Progress (the position and the counts) is written after each round was delivered or spilled:
a job whose instance dies goes on from there on another (that round may go out twice: delivery is at
least once). A job's rate is limited (``replay_plan.Pacer``); while its consumer's circuit is open, the job
waits (and probes the consumer, as the retry worker does), and while the consumer is disabled, it waits.
Cancelling (the API sets ``state = 'cancelled'``) stops it at its next step.

Messages arrive in the history a moment after they are received (group commits; a JavaScript decoder
first): a job reads only messages received ``settle_s`` ago or longer. A backfill's job ends at its
subscription's ``live_from``; the pipeline delivers a stored message live to that subscription only if it
was received from ``live_from`` on (``Snapshot.live_consumers``): each message goes out exactly once,
whichever instance handles it, as long as the instances' clocks agree and each loads the new
subscription before ``live_from`` (the API sets it ``backfill_seam_s``, 5 s, ahead; a registry change
reaches the instances in milliseconds). An instance that loads it later logs a warning.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import structlog

from distributor.delivery.dispatcher import Dispatcher
from distributor.delivery.lane import ConsumerLane
from distributor.delivery.outage import Outage
from distributor.delivery.policy import CLOSED
from distributor.delivery.spill import SpillRow
from distributor.formats import render
from distributor.pipeline import topic_vars
from distributor.replay_plan import FirstCopies, Pacer, Window, wanted
from distributor.sinks.base import REPLAY, DeliveryError, Outgoing
from registry.batches import reason
from registry.cache import RegistryCache
from registry.records import Consumer, Subscription

log = structlog.get_logger("iotd.replay")

ZERO_ID = uuid.UUID(int=0)
_DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)

CLAIM = """
UPDATE replays SET state = 'running', claimed_by = $1, lease_until = now() + make_interval(secs => $2),
       started_at = coalesce(started_at, now()), updated_at = now()
 WHERE id = (SELECT id FROM replays
              WHERE state IN ('queued', 'running') AND kind IN ('replay', 'backfill')
                AND (lease_until IS NULL OR lease_until < now() OR claimed_by = $1) AND NOT (id = ANY($3::uuid[]))
              ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id, consumer_id, organization_id, kind, subscription_id, application_id, device_ids, from_at, to_at, rate,
          cursor_at, cursor_id
"""
PROGRESS = """
UPDATE replays SET cursor_at = $3, cursor_id = $4, sent = sent + $5, spilled = spilled + $6, skipped = skipped + $7,
       waiting = NULL, lease_until = now() + make_interval(secs => $8), updated_at = now()
 WHERE id = $1 AND state = 'running' AND claimed_by = $2 RETURNING id
"""
WAITING = """
UPDATE replays SET waiting = $3, lease_until = now() + make_interval(secs => $4), updated_at = now()
 WHERE id = $1 AND state = 'running' AND claimed_by = $2 RETURNING id
"""
FINISH = """
UPDATE replays SET state = $3, error = $4, waiting = NULL, finished_at = now(), lease_until = NULL, updated_at = now()
 WHERE id = $1 AND state = 'running' AND claimed_by = $2
"""
READ = """
SELECT received_at, id, device_id, body FROM messages
 WHERE organization_id = $1 AND received_at >= $2 AND received_at < $3 AND (received_at, id) > ($2, $4::uuid)
   AND ($5::uuid IS NULL OR application_id = $5) AND (cardinality($6::uuid[]) = 0 OR device_id = ANY($6::uuid[]))
 ORDER BY received_at, id LIMIT $7
"""
RELEASE_MINE = "UPDATE replays SET lease_until = NULL WHERE claimed_by = $1 AND state = 'running'"


@dataclass(slots=True)
class Job:
    id: str
    consumer_id: str
    organization_id: str
    subscription_id: str | None
    application_id: str | None
    device_ids: list[str]
    to_at: datetime
    rate: int
    at: datetime               # the position: everything up to (at, after) is done
    after: uuid.UUID

    @classmethod
    def of(cls, row: asyncpg.Record) -> Job:
        return cls(str(row["id"]), str(row["consumer_id"]), str(row["organization_id"]),
                   str(row["subscription_id"]) if row["subscription_id"] else None,
                   str(row["application_id"]) if row["application_id"] else None,
                   [str(d) for d in row["device_ids"]], row["to_at"], row["rate"],
                   row["cursor_at"] or row["from_at"], row["cursor_id"] or ZERO_ID)


class Stopped(Exception):
    """The job was cancelled, deleted (with its consumer or subscription) or claimed by another instance."""


class ReplayWorker:
    def __init__(self, pool: asyncpg.Pool, cache: RegistryCache, dispatcher: Dispatcher, *, instance: str,
                 poll_s: float = 1.0, lease_s: float = 60.0, settle_s: float = 10.0, max_jobs: int = 4,
                 read_rows: int = 1000) -> None:
        self._pool = pool
        self._cache = cache
        self._dispatcher = dispatcher
        self._instance = instance
        self._poll_s = poll_s
        self._lease_s = lease_s
        self._settle = timedelta(seconds=settle_s)
        self._max_jobs = max_jobs
        self._read_rows = read_rows
        self._jobs: dict[str, asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._outage = Outage(log, "replay jobs cannot reach the database; will keep trying",
                              "replay jobs reach the database again")

    async def start(self) -> None:
        try:
            await self._pool.execute(RELEASE_MINE, self._instance)   # this instance's jobs from its last run
        except _DB_ERRORS as exc:
            log.warning("could not take back earlier replay jobs; they return when their lease ends", error=reason(exc))
        self._task = asyncio.create_task(self._run(), name="replay-worker")

    async def close(self) -> None:
        tasks = [t for t in (self._task, *self._jobs.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:   # the jobs go on at once on the next instance (or run) instead of after the lease
            async with asyncio.timeout(2):
                await self._pool.execute(RELEASE_MINE, self._instance)
        except Exception as exc:
            log.warning("replay jobs not handed back at shutdown; they return when their lease ends", error=reason(exc))

    async def _run(self) -> None:
        while True:
            self._jobs = {jid: t for jid, t in self._jobs.items() if not t.done()}
            try:
                while len(self._jobs) < self._max_jobs:
                    row = await self._pool.fetchrow(CLAIM, self._instance, self._lease_s, list(self._jobs))
                    if row is None:
                        break
                    job = Job.of(row)
                    log.info("replay job started", replay=job.id, consumer=job.consumer_id, kind=row["kind"],
                             position=job.at.isoformat(), to=job.to_at.isoformat())
                    self._jobs[job.id] = asyncio.create_task(self._run_job(job), name=f"replay-{job.id[:8]}")
                self._outage.ok()
            except _DB_ERRORS as exc:
                self._outage.failed(reason(exc))
            await asyncio.sleep(self._poll_s)

    async def _run_job(self, job: Job) -> None:
        try:
            outcome = await ReplayRun(self, job).run()
        except Stopped:
            log.info("replay job stopped (cancelled, deleted or taken over)", replay=job.id)
            return
        except _DB_ERRORS as exc:   # the lease runs out and the job goes on from its position
            log.warning("replay job interrupted; it goes on from its position", replay=job.id, error=reason(exc))
            return
        except Exception as exc:
            log.error("replay job failed", replay=job.id, exc_info=exc)
            outcome = f"internal error: {type(exc).__name__}"
        try:
            await self._pool.execute(FINISH, job.id, self._instance, "done" if outcome is None else "failed", outcome)
        except _DB_ERRORS as exc:
            log.warning("replay job's end not recorded; it is checked again", replay=job.id, error=reason(exc))
            return
        log.info("replay job done" if outcome is None else "replay job failed", replay=job.id, error=outcome)

    # --- what a run needs from the worker ------------------------------------------------------
    async def read(self, job: Job, end: datetime, rows: int) -> list[asyncpg.Record]:
        result: list[asyncpg.Record] = await self._pool.fetch(
            READ, job.organization_id, job.at, end, job.after, job.application_id, job.device_ids, rows)
        return result

    async def step(self, query: str, job: Job, *args: Any) -> None:
        """A progress or waiting update; ``Stopped`` when the job is no longer this instance's to run."""
        if await self._pool.fetchval(query, job.id, self._instance, *args) is None:
            raise Stopped


class ReplayRun:
    """One job on one instance, from its position to its end."""

    def __init__(self, worker: ReplayWorker, job: Job) -> None:
        self.worker = worker
        self.job = job
        self.window = Window(worker._read_rows)
        self.pacer = Pacer(job.rate)
        self.copies = FirstCopies()

    async def run(self) -> str | None:
        """None when every message was sent (or spilled); the reason when the job cannot go on."""
        job, worker = self.job, self.worker
        while True:
            limit = min(job.to_at, datetime.now(UTC) - worker._settle)
            if job.at >= job.to_at:
                return None
            if job.at >= limit:                      # a backfill waits for its seam to settle
                await worker.step(WAITING, job, "waiting for messages to settle in the history", worker._lease_s)
                await asyncio.sleep(min(worker._poll_s, max(0.05, (job.to_at - job.at).total_seconds())))
                continue
            end = self.window.end(job.at, limit)
            rows = await worker.read(job, end, self.window.rows)
            full = self.window.read(len(rows))
            await self.send(rows)
            if not full:                                # the window is done: the next one starts at its end
                await worker.step(PROGRESS, job, end, ZERO_ID, 0, 0, 0, worker._lease_s)
                job.at, job.after = end, ZERO_ID

    async def ready(self) -> tuple[Consumer, ConsumerLane, Subscription | None, bool]:
        """The consumer, its lane, the backfill's subscription and whether this round probes a failing consumer;
        waits while the consumer is disabled or its circuit is open."""
        job, worker = self.job, self.worker
        while True:
            snapshot = worker._cache.snapshot
            consumer = snapshot.consumers.get(job.consumer_id)
            lane = worker._dispatcher.lanes.get(job.consumer_id)
            subscription = None
            if job.subscription_id is not None:
                subscription = next((s for s in snapshot.subscriptions if s.id == job.subscription_id), None)
            why = None
            if consumer is None or not consumer.enabled or lane is None:
                why = "consumer disabled (or its lane is opening)"
            elif job.subscription_id is not None and subscription is None:
                why = "subscription not loaded yet"
            elif lane.breaker.state != CLOSED and not lane.breaker.may_probe(time.monotonic(), True):
                why = f"consumer failing (circuit {lane.breaker.state}); going on when it recovers"
            if why is None:
                assert consumer is not None and lane is not None
                return consumer, lane, subscription, lane.breaker.state != CLOSED
            await worker.step(WAITING, job, why, worker._lease_s)
            await asyncio.sleep(worker._poll_s)

    async def send(self, rows: list[asyncpg.Record]) -> None:
        """Send ``rows`` in rounds of the consumer's concurrency in batches, recording the position after each."""
        job, worker = self.job, self.worker
        at = 0
        while at < len(rows):
            consumer, lane, subscription, probing = await self.ready()
            snapshot = worker._cache.snapshot
            round_size = lane.batch if probing else lane.batch * lane.concurrency
            items: list[Outgoing] = []
            skipped = 0
            taken = rows[at : at + round_size]
            for row in taken:
                device = snapshot.devices.get(str(row["device_id"]))
                message_id = str(row["id"])
                if (device is None or not wanted(snapshot, job.consumer_id, device, row["received_at"].timestamp(),
                                                  subscription) or not self.copies.first(message_id)):
                    skipped += 1
                    continue
                body = row["body"] if consumer.format == "native" else render(
                    consumer.format, orjson.loads(row["body"]), None)
                items.append(Outgoing(message_id, body, {**topic_vars(device), REPLAY: job.id}))
            delay = self.pacer.delay(len(items), time.monotonic()) if items else 0.0
            if delay:
                await asyncio.sleep(delay)
            sent, spilled = await self.deliver(consumer, lane, items)
            last = taken[-1]
            await worker.step(PROGRESS, job, last["received_at"], last["id"], sent, spilled, skipped, worker._lease_s)
            job.at, job.after = last["received_at"], last["id"]
            at += len(taken)

    async def deliver(self, consumer: Consumer, lane: ConsumerLane, items: list[Outgoing]) -> tuple[int, int]:
        """(sent, spilled): batches at once (as backlog sends: live ones go first); a failed one is spilled for
        the retry worker, and is done once that is committed."""
        batches = [items[i : i + lane.batch] for i in range(0, len(items), lane.batch)]
        outcomes = await asyncio.gather(*(self._send(lane, batch) for batch in batches))
        spills = [SpillRow(consumer.id, item, 1, exc.detail, exc.status,
                           lane.policy.backoff(1, exc.retry_after),
                           None if exc.retryable else "refused by the consumer", exc.response)
                  for batch, exc in zip(batches, outcomes, strict=True) if exc is not None for item in batch]
        if spills:
            await self.worker._dispatcher.spill.add(spills)
        return len(items) - len(spills), len(spills)

    async def _send(self, lane: ConsumerLane, batch: list[Outgoing]) -> DeliveryError | None:
        async with lane.slots.backlog():
            try:
                await lane.send(batch)
            except DeliveryError as exc:
                lane.failed(len(batch), exc)
                return exc
        lane.succeeded(len(batch))
        return None
