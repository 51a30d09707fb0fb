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
from distributor.envelope import build_message
from distributor.formats import render
from distributor.history import numeric
from distributor.pipeline import Pipeline, topic_vars
from distributor.replay_plan import FirstCopies, Pacer, Window, wanted
from distributor.sinks.base import REPLAY, DeliveryError, Outgoing
from registry.batches import reason
from registry.cache import RegistryCache
from registry.records import Consumer, Device, Subscription

log = structlog.get_logger("iotd.replay")

ZERO_ID = uuid.UUID(int=0)
_DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)

CLAIM = """
UPDATE replays SET state = 'running', claimed_by = $1, lease_until = now() + make_interval(secs => $2),
       started_at = coalesce(started_at, now()), updated_at = now()
 WHERE id = (SELECT id FROM replays
              WHERE state IN ('queued', 'running')
                AND (lease_until IS NULL OR lease_until < now() OR claimed_by = $1) AND NOT (id = ANY($3::uuid[]))
              ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id, consumer_id, consumer_ids, organization_id, kind, subscription_id, decoder, application_id, device_ids,
          from_at, to_at, rate, cursor_at, cursor_id
"""
PROGRESS = """
UPDATE replays SET cursor_at = $3, cursor_id = $4, sent = sent + $5, spilled = spilled + $6, skipped = skipped + $7,
       waiting = NULL, lease_until = now() + make_interval(secs => $8), updated_at = now()
 WHERE id = $1 AND state = 'running' AND claimed_by = $2 RETURNING id
"""
WAITING = """
UPDATE replays SET waiting = $3, lease_until = now() + make_interval(secs => $4), sent = sent + $5,
       spilled = spilled + $6, skipped = skipped + $7, updated_at = now()
 WHERE id = $1 AND state = 'running' AND claimed_by = $2 RETURNING id
"""
FINISH = """
UPDATE replays SET state = $3, error = $4, waiting = NULL, finished_at = now(), lease_until = NULL, updated_at = now()
 WHERE id = $1 AND state = 'running' AND claimed_by = $2
"""
READ = """
SELECT received_at, id, device_id, body, payload, f_port FROM messages
 WHERE organization_id = $1 AND received_at >= $2 AND received_at < $3 AND (received_at, id) > ($2, $4::uuid)
   AND ($5::uuid IS NULL OR application_id = $5) AND (cardinality($6::uuid[]) = 0 OR device_id = ANY($6::uuid[]))
 ORDER BY received_at, id LIMIT $7
"""
STORE_AGAIN = """
UPDATE messages SET body = $4, names = $5, vals = $6 WHERE received_at = $1 AND id = $2 AND device_id = $3
"""
ROUND = 256                # messages between two progress records, at most ...
ROUNDS_PER_S = 20          # ... and a round is at most 1/20 s of the job's rate: the work is spread, not bursty
# publishes of one replay batch to an MQTT consumer: the broker's in-flight window (its Receive Maximum, 20 to
# 100 by default) is shared with live messages, and a replay batch of hundreds would queue them behind it
MQTT_BATCH = 16
RELEASE_MINE = "UPDATE replays SET lease_until = NULL WHERE claimed_by = $1 AND state = 'running'"


@dataclass(slots=True)
class Job:
    id: str
    targets: list[str]         # the consumers the messages go to (a reprocess job: none or several)
    decoder: str | None        # a reprocess job's decoder
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
        targets = [str(row["consumer_id"])] if row["consumer_id"] else [str(c) for c in row["consumer_ids"]]
        return cls(str(row["id"]), targets, row["decoder"] if row["kind"] == "reprocess" else None,
                   str(row["organization_id"]),
                   str(row["subscription_id"]) if row["subscription_id"] else None,
                   str(row["application_id"]) if row["application_id"] else None,
                   [str(d) for d in row["device_ids"]], row["to_at"], row["rate"],
                   row["cursor_at"] or row["from_at"], row["cursor_id"] or ZERO_ID)


Found = tuple[asyncpg.Record, Device, bytes]     # a stored message, its device and its native body


class Stopped(Exception):
    """The job was cancelled, deleted (with its consumer or subscription) or claimed by another instance."""


class ReplayWorker:
    def __init__(self, pool: asyncpg.Pool, cache: RegistryCache, dispatcher: Dispatcher, *, instance: str,
                 pipeline: Pipeline | None = None,
                 poll_s: float = 1.0, lease_s: float = 60.0, settle_s: float = 10.0, max_jobs: int = 4,
                 read_rows: int = 500) -> None:
        self._pool = pool
        self._cache = cache
        self._dispatcher = dispatcher
        self._pipeline = pipeline       # decodes a reprocess job's uplinks
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
                    log.info("replay job started", replay=job.id, consumers=job.targets, kind=row["kind"],
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
        self.round = max(1, min(ROUND, job.rate // ROUNDS_PER_S))   # messages between two progress records
        self.copies = FirstCopies()
        self.counts = [0, 0, 0]                       # sent, spilled, skipped since they were last recorded

    def counted(self) -> tuple[int, int, int]:
        """The counts to record now (and zero them)."""
        sent, spilled, skipped = self.counts
        self.counts = [0, 0, 0]
        return sent, spilled, skipped

    async def run(self) -> str | None:
        """None when every message was sent (or spilled); the reason when the job cannot go on."""
        job, worker = self.job, self.worker
        while True:
            limit = min(job.to_at, datetime.now(UTC) - worker._settle)
            if job.at >= job.to_at:
                return None
            if job.at >= limit:                      # a backfill waits for its seam to settle
                await worker.step(WAITING, job, "waiting for messages to settle in the history", worker._lease_s,
                                  *self.counted())
                await asyncio.sleep(min(worker._poll_s, max(0.05, (job.to_at - job.at).total_seconds())))
                continue
            end = self.window.end(job.at, limit)
            rows = await worker.read(job, end, self.window.rows)
            full = self.window.read(len(rows))
            for at in range(0, len(rows), self.round):
                await self.process(rows[at : at + self.round])
            if not full:                                # the window is done: the next one starts at its end
                await worker.step(PROGRESS, job, end, ZERO_ID, *self.counted(), worker._lease_s)
                job.at, job.after = end, ZERO_ID

    async def process(self, rows: list[asyncpg.Record]) -> None:
        """One round: the messages (re-decoded and stored again, for a reprocess job) to each target consumer;
        then the position is recorded."""
        job, worker = self.job, self.worker
        snapshot = worker._cache.snapshot
        fresh = [r for r in rows if self.copies.first(str(r["id"]))]
        if job.decoder is not None:
            found, skipped = await self.redecoded(fresh)
        else:
            found = [(r, d, r["body"]) for r in fresh if (d := snapshot.devices.get(str(r["device_id"]))) is not None]
            skipped = len(fresh) - len(found)
        skipped += len(rows) - len(fresh)
        delay = self.pacer.delay(len(found), time.monotonic()) if found else 0.0
        if delay:
            await asyncio.sleep(delay)
        self.counts[2] += skipped
        for consumer_id in job.targets:
            await self.deliver_to(consumer_id, found, count_skipped=job.decoder is None)
        last = rows[-1]
        await worker.step(PROGRESS, job, last["received_at"], last["id"], *self.counted(), worker._lease_s)
        job.at, job.after = last["received_at"], last["id"]

    async def redecoded(self, rows: list[asyncpg.Record]) -> tuple[list[Found], int]:
        """The rows' uplinks decoded again by their device's current decoder (if it is still the job's), stored
        in place of the old result; and how many were skipped."""
        worker = self.worker
        assert worker._pipeline is not None
        snapshot = worker._cache.snapshot
        mine = [(r, d) for r in rows if (d := snapshot.devices.get(str(r["device_id"]))) is not None
                and d.decoder == self.job.decoder]
        outcomes = await asyncio.gather(*(worker._pipeline.redecode(d, r["payload"], r["f_port"],
                                                                    r["received_at"].timestamp()) for r, d in mine))
        found: list[Found] = []
        updates = []
        for (r, device), (version, result, measurements) in zip(mine, outcomes, strict=True):
            old = orjson.loads(r["body"])
            message = build_message(msg_id=str(r["id"]), received_at=r["received_at"].timestamp(),
                                    measured_at=old.get("measured_at"), device=device, network=old.get("network") or {},
                                    payload=r["payload"], decoder_version=version, result=result,
                                    measurements=measurements)
            body = render("native", message, None)
            updates.append((r["received_at"], r["id"], r["device_id"], body, *numeric(message["measurements"])))
            found.append((r, device, body))
        if updates:
            await worker._pool.executemany(STORE_AGAIN, updates)
        return found, len(rows) - len(mine)

    async def ready(self, consumer_id: str) -> tuple[Consumer, ConsumerLane, Subscription | None, bool] | None:
        """The consumer, its lane, the backfill's subscription and whether this round probes a failing consumer;
        waits while the consumer is disabled or its circuit is open. None: a reprocess job's consumer was
        deleted (a replay or backfill job is deleted with its consumer)."""
        job, worker = self.job, self.worker
        while True:
            snapshot = worker._cache.snapshot
            consumer = snapshot.consumers.get(consumer_id)
            if consumer is None and job.decoder is not None:
                return None
            lane = worker._dispatcher.lanes.get(consumer_id)
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
            await worker.step(WAITING, job, why, worker._lease_s, *self.counted())
            await asyncio.sleep(worker._poll_s)

    async def deliver_to(self, consumer_id: str, found: list[Found], count_skipped: bool) -> None:
        """These messages to one consumer, in rounds of its concurrency in batches (counted in ``counts``)."""
        at = 0
        while at < len(found):
            target = await self.ready(consumer_id)
            if target is None:
                return
            consumer, lane, subscription, probing = target
            snapshot = self.worker._cache.snapshot
            taken = found[at : at + (lane.batch if probing else lane.batch * lane.concurrency)]
            items = []
            for row, device, body in taken:
                if not wanted(snapshot, consumer_id, device, row["received_at"].timestamp(), subscription):
                    self.counts[2] += count_skipped
                    continue
                if consumer.format != "native":
                    body = render(consumer.format, orjson.loads(body), None)
                items.append(Outgoing(str(row["id"]), body, {**topic_vars(device), REPLAY: self.job.id}))
            sent, spilled = await self.deliver(consumer, lane, items)
            self.counts[0] += sent
            self.counts[1] += spilled
            at += len(taken)

    async def deliver(self, consumer: Consumer, lane: ConsumerLane, items: list[Outgoing]) -> tuple[int, int]:
        """(sent, spilled): batches at once (as backlog sends: live ones go first); a failed one goes to the
        spill as the lane's own do (``ConsumerLane.spill``: counted, dead letters logged), for the retry worker,
        and is done once that is committed."""
        size = lane.batch if consumer.kind == "http" else min(lane.batch, MQTT_BATCH)
        batches = [items[i : i + size] for i in range(0, len(items), size)]
        outcomes = await asyncio.gather(*(self._send(lane, batch) for batch in batches))
        spills = [lane.spill(batch, exc.detail, exc.status, attempts=1, delay_s=lane.policy.backoff(1, exc.retry_after),
                             dead_reason=None if exc.retryable else "refused by the consumer", response=exc.response)
                  for batch, exc in zip(batches, outcomes, strict=True) if exc is not None]
        await asyncio.gather(*spills)
        spilled = sum(len(b) for b, exc in zip(batches, outcomes, strict=True) if exc is not None)
        return len(items) - spilled, spilled

    async def _send(self, lane: ConsumerLane, batch: list[Outgoing]) -> DeliveryError | None:
        async with lane.slots.backlog():
            try:
                await lane.send(batch)
            except DeliveryError as exc:
                lane.failed(len(batch), exc)
                return exc
        lane.succeeded(len(batch))
        return None
