"""JavaScript decoding off the event loop: worker processes, fair between organizations, hard deadlines.

JavaScript never runs in the service's process. :class:`JsPool` keeps N workers (``decoders.js.worker``,
one :class:`~distributor.js_workers.WorkerHandle` each) and decides, once per loop turn, which uplinks
each runs; answers come back as callbacks, so there is no task or future per message.

* **Fair queueing**: uplinks wait in one queue per organization; organizations take turns (round
  robin) at the workers. A worker holds one organization's uplinks at a time, so another
  organization's never wait behind them, and at most ``cap`` workers hold one organization's
  (default half of them, at least one: with two workers one organization never has both). A worker
  is topped up with more of its organization's uplinks (several requests per write, answered in
  order) unless another organization is waiting for a worker and none is idle: then it drains and
  changes hands. At most ``queue_limit`` uplinks wait per organization; beyond that an uplink fails
  at once, and, as every failure here, goes out undecoded with ``decoder.status = "error"``.
* **Hard deadline**: the head of a worker's queue must be answered within its ``timeout_ms`` plus
  ``grace_s``, measured from when it became the head; when the worker has not loaded that codec yet,
  plus ``timeout_ms`` + ``load_s`` for the load (the worker's own load limit is ``timeout_ms`` + 1 s:
  QuickJS counts CPU time and the deadline wall time, so the engine reports first on a busy machine).
  Otherwise the worker is SIGKILLed: that uplink gets a timeout error, the ones behind it go back to
  the front of their queues, and a fresh worker starts; until it is ready the slot still counts as that
  organization's, so it cannot take another organization's worker meanwhile. QuickJS stops loops and
  regular expressions at the time limit itself; the deadline is for what its interrupt cannot reach
  (a native loop such as ``new Array(4e9).join('')``).
* **Lost workers** (a crash, the address-space limit, a kill from outside) are replaced the same way;
  the uplink at the head of a worker that died, if it was at the head of one before, fails instead of
  killing a third (the ones behind it had not started: they are requeued without blame).
* **Suspension**: a decoder that times out ``suspend_after`` times in a row for one organization is
  suspended for that organization for ``suspend_s``; its uplinks fail at once, saying until when.
  The first timeout after a suspension suspends it again for twice as long (up to 64 times); any
  answer in time resets it. Each suspension is logged once (error) and counted.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from distributor import waiting
from distributor.js_codecs import Suspensions
from distributor.js_workers import JsJob, WorkerHandle
from registry.records import JsDecoderRecord

log = structlog.get_logger("iotd.js")

WATCH_S = 0.05
STARTUP_S = 30.0
SPREAD_AT = 8
"""A busy organization gets a second (idle) worker once its first holds this many uplinks."""
Answer = dict[str, Any]


def failure(reason: str) -> Answer:
    """A stand-in answer: the uplink goes out undecoded, with this error."""
    return {"d": {}, "w": [], "e": [reason], "m": []}


@dataclass(slots=True)
class DecoderCounters:
    """Per decoder id, for /metrics (never per device)."""

    calls: int = 0
    timeouts: int = 0
    out_of_memory: int = 0
    contexts_built: int = 0
    suspensions: int = 0


class JsPool:
    def __init__(self, workers: int = 0, max_per_organization: int = 0, queue_per_organization: int = 1000,
                 suspend_after: int = 5, suspend_s: float = 60.0, *, grace_s: float = 0.3,
                 load_s: float = 2.0) -> None:
        self.size = workers or os.cpu_count() or 1  # with one worker, organizations only take turns: set 2+
        self.cap = max_per_organization or max(1, self.size // 2)
        self.queue_limit = queue_per_organization
        self.suspend_after = suspend_after
        self.suspend_s = suspend_s
        self.grace_s = grace_s
        self.load_s = load_s
        self.counters: dict[str, DecoderCounters] = {}
        self.restarts = 0
        self._workers: list[WorkerHandle | None] = [None] * self.size
        self._waiting: dict[str, deque[JsJob]] = {}
        self._ring: deque[str] = deque()
        self._occupied: dict[str, int] = {}
        self._suspensions = Suspensions(suspend_after, suspend_s)
        self._closed = False
        self._spawned = False
        self._pump_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._watchdog: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Ready to take uplinks; the workers start with the first one (a service without JavaScript
        decoders never starts any), with :meth:`spawn`, or with :meth:`warm`."""
        self._loop = asyncio.get_running_loop()

    def spawn(self) -> None:
        """Start the workers in the background (when the registry has JavaScript decoders at start-up)."""
        self._spawn_all()

    async def warm(self) -> None:
        """Start the workers now and wait until they answer (benchmarks, tests, a deployment that wants
        its first JavaScript uplink decoded without waiting for a worker to start)."""
        self._spawn_all()
        try:
            await asyncio.wait_for(asyncio.gather(*self._tasks), STARTUP_S)
            await asyncio.wait_for(asyncio.gather(*(w.started.wait() for w in self._workers if w is not None)),
                                   STARTUP_S)
        except TimeoutError:
            log.warning("JavaScript workers slow to start; uplinks wait for them", seconds=STARTUP_S)

    def _spawn_all(self) -> None:
        if self._spawned or self._closed or self._loop is None:
            return
        self._spawned = True
        for slot in range(self.size):
            self._start_task(self._spawn(slot))
        self._watchdog = self._loop.call_later(WATCH_S, self._watch)
        log.info("JavaScript workers starting", workers=self.size, per_organization=self.cap)

    async def close(self, drain_s: float = 2.0) -> None:
        """Answer what waits with an error (it goes out undecoded), give what runs ``drain_s``, then stop."""
        self._closed = True
        for queue in self._waiting.values():
            while queue:
                self._finish(queue.popleft(), failure("the service is stopping; delivered undecoded"))
        self._waiting.clear()
        self._ring.clear()
        await waiting.until(lambda: not any(w is not None and w.inflight for w in self._workers),
                            waiting.deadline_in(drain_s))
        if self._watchdog is not None:
            self._watchdog.cancel()
        for task in list(self._tasks):
            task.cancel()
        handles = [w for w in self._workers if w is not None]
        for worker in handles:
            jobs = list(worker.inflight)
            worker.inflight.clear()
            worker.close()
            for job in jobs:
                self._finish(job, failure("the service stopped before the decoder answered; delivered undecoded"))
        for worker in handles:
            if worker.transport is not None:
                try:
                    await asyncio.wait_for(worker.exited.wait(), 2.0)
                except TimeoutError:
                    log.warning("JavaScript worker did not exit", pid=worker.pid)

    # --- the public face -----------------------------------------------------------------------
    def submit(self, organization: str, record: JsDecoderRecord, key: str | None, body: dict[str, Any],
               done: Callable[[Answer], None]) -> None:
        """Decode ``body`` (see ``decoders.js.wire``) in a worker; ``done`` gets the answer, maybe at once."""
        if self._closed:
            done(failure("the service is stopping; delivered undecoded"))
            return
        reason = self._suspensions.reason(record.id, organization, self._now())
        if reason is not None:
            done(failure(reason))
            return
        queue = self._waiting.get(organization)
        if queue is None:
            queue = self._waiting[organization] = deque()
            self._ring.append(organization)
        elif len(queue) >= self.queue_limit:
            done(failure(f"{len(queue)} uplinks of this organization are already waiting for JavaScript decoders;"
                         " delivered undecoded"))
            return
        queue.append(JsJob(organization, record, key, body, done, queued_at=time.monotonic()))
        if not self._spawned:
            self._spawn_all()
        self._schedule_pump()

    def suspended(self) -> set[str]:
        """Decoder ids suspended now (for at least one organization)."""
        return self._suspensions.active(self._now())

    def worker_pids(self) -> list[int]:
        return [pid for w in self._workers if w is not None and not w.dead and (pid := w.pid) is not None]

    def waiting(self) -> int:
        return sum(len(q) for q in self._waiting.values())

    # --- scheduling --------------------------------------------------------------------------
    def _now(self) -> float:
        return self._loop.time() if self._loop is not None else time.monotonic()

    def _schedule_pump(self) -> None:
        if not self._pump_scheduled and self._loop is not None:
            self._pump_scheduled = True
            self._loop.call_soon(self._pump)

    def _pump(self) -> None:
        """Hand waiting uplinks to workers, organizations in turn; then one write per worker."""
        self._pump_scheduled = False
        ring, misses = self._ring, 0
        while ring and misses < len(ring):
            organization = ring[0]
            worker = self._worker_for(organization)
            if worker is None:
                ring.rotate(-1)
                misses += 1
                continue
            misses = 0
            self._fill(worker, organization)
            if self._waiting[organization]:
                ring.rotate(-1)
            else:
                ring.popleft()
                del self._waiting[organization]
        for w in self._workers:
            if w is not None:
                w.flush()

    def _worker_for(self, organization: str) -> WorkerHandle | None:
        owned = idle = None
        for w in self._workers:
            if w is None or not w.has_room():
                continue
            if w.owner == organization:
                owned = owned or w
            elif w.owner is None:
                idle = idle or w
        may_take = idle is not None and self._occupied.get(organization, 0) < self.cap
        if owned is not None:
            if may_take and len(owned.inflight) >= SPREAD_AT:
                return idle
            if idle is not None or not self._others_eligible(organization):
                return owned
            return None  # let it drain: another organization waits and no worker is free
        return idle if may_take else None

    def _others_eligible(self, organization: str) -> bool:
        return any(o != organization and self._occupied.get(o, 0) < self.cap for o in self._ring)

    def _fill(self, worker: WorkerHandle, organization: str) -> None:
        queue, now, took = self._waiting[organization], self._now(), not worker.inflight
        while queue and worker.has_room():
            job = queue.popleft()
            reason = self._suspensions.reason(job.record.id, organization, now)
            if reason is not None:
                self._finish(job, failure(reason))
                continue
            limit_s = job.record.timeout_ms / 1000
            load = 0.0 if job.codec in worker.loaded else limit_s + self.load_s  # the worker's load limit + slack
            worker.assign(job, limit_s + load + self.grace_s, now)
        if took and worker.inflight:
            worker.owner = organization
            self._occupied[organization] = self._occupied.get(organization, 0) + 1

    def _release(self, worker: WorkerHandle) -> None:
        owner, worker.owner = worker.owner, None
        if owner is not None:
            left = self._occupied.get(owner, 1) - 1
            if left > 0:
                self._occupied[owner] = left
            else:
                self._occupied.pop(owner, None)

    # --- answers, deadlines, losses ------------------------------------------------------------
    def _on_ready(self, worker: WorkerHandle) -> None:
        if not worker.inflight:
            self._release(worker)  # a reservation held while it started
        self._schedule_pump()

    def _on_answers(self, worker: WorkerHandle, answers: list[Any]) -> None:
        for answer in answers:
            if not worker.inflight or not isinstance(answer, dict):
                self._on_lost(worker, "it answered a request it was not given")
                return
            self._complete(worker.answered(), answer)
        if worker.inflight:
            worker.head_since = self._now()
        else:
            self._release(worker)
        self._schedule_pump()

    def _complete(self, job: JsJob, answer: Answer) -> None:
        counters = self._counters(job.record.id)
        counters.calls += 1
        counters.contexts_built += int(answer.get("b", 0))
        kind = answer.get("x")
        if kind == "timeout":
            counters.timeouts += 1
            self._timed_out(job)
        else:
            if kind == "memory":
                counters.out_of_memory += 1
            self._suspensions.answered(job.record.id, job.organization)
        self._finish(job, answer)

    def _watch(self) -> None:
        now = self._now()
        for worker in list(self._workers):
            if worker is None or worker.dead:
                continue
            if worker.inflight and now - worker.head_since > worker.inflight[0].budget_s:
                self._kill(worker, now)
            elif not worker.ready and now - worker.started_at > STARTUP_S:
                worker.kill()
                self._on_lost(worker, f"it did not start within {STARTUP_S:g} s")
        if not self._closed and self._loop is not None:
            self._watchdog = self._loop.call_later(WATCH_S, self._watch)

    def _kill(self, worker: WorkerHandle, now: float) -> None:
        head = worker.inflight.popleft()
        waited = now - worker.head_since
        rest = list(worker.inflight)
        worker.inflight.clear()
        worker.kill()
        self.restarts += 1
        log.error("JavaScript decoder missed its hard deadline; its worker was killed and replaced",
                  decoder=head.record.id, organization=head.organization, timeout_ms=head.record.timeout_ms,
                  waited_s=round(waited, 3), pid=worker.pid, requeued=len(rest))
        counters = self._counters(head.record.id)
        counters.calls += 1
        counters.timeouts += 1
        self._timed_out(head)
        self._finish(head, failure(f"timed out after {head.record.timeout_ms} ms: the worker did not answer within"
                                   f" {head.budget_s:.1f} s and was replaced"))
        self._requeue(rest)
        self._replace(worker)

    def _on_lost(self, worker: WorkerHandle, why: str) -> None:
        if self._workers[worker.slot] is not worker or self._closed:
            return
        jobs = list(worker.inflight)
        worker.inflight.clear()
        worker.kill()
        self.restarts += 1
        log.error("JavaScript worker lost; starting another", reason=why, pid=worker.pid, slot=worker.slot,
                  uplinks=len(jobs))
        self._requeue(jobs, head_died=True)
        self._replace(worker)

    def _requeue(self, jobs: list[JsJob], head_died: bool = False) -> None:
        """Back to the front of their queues, in order. With ``head_died`` the first was (most likely) the
        one running when its worker died: its second time fails it instead of killing a third worker. The
        others had not started; they carry no blame (an outside kill would otherwise fail them all)."""
        keep: list[JsJob] = []
        for position, job in enumerate(jobs):
            if head_died and position == 0:
                job.strikes += 1
            if job.strikes >= 2 or self._closed:
                self._finish(job, failure("the JavaScript worker decoding this uplink was lost twice; delivered"
                                          " undecoded"))
            else:
                keep.append(job)
        for job in reversed(keep):
            queue = self._waiting.get(job.organization)
            if queue is None:
                queue = self._waiting[job.organization] = deque()
                self._ring.append(job.organization)
            queue.appendleft(job)
        if keep:
            self._schedule_pump()

    def _replace(self, worker: WorkerHandle) -> None:
        """A new worker for the slot. The organization whose uplink killed the old one keeps the slot counted
        as its own until the new one is ready, so it cannot take another organization's worker meanwhile."""
        if self._workers[worker.slot] is worker:
            self._workers[worker.slot] = None
        if self._closed:
            self._release(worker)
        else:
            self._start_task(self._spawn(worker.slot, worker.owner))

    def _start_task(self, work: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None
        task = self._loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _spawn(self, slot: int, reserved_for: str | None = None) -> None:
        while not self._closed:
            handle = WorkerHandle(slot, self._on_answers, self._on_lost, self._on_ready, owner=reserved_for)
            self._workers[slot] = handle
            try:
                await handle.spawn()
                return
            except OSError as exc:
                self._workers[slot] = None
                log.error("cannot start a JavaScript worker; retrying in 1 s", error=str(exc), slot=slot)
                await asyncio.sleep(1.0)

    def _timed_out(self, job: JsJob) -> None:
        suspended = self._suspensions.timed_out(job.record.id, job.organization, self._now(), time.time())
        if suspended is None:
            return
        seconds, timeouts = suspended
        self._counters(job.record.id).suspensions += 1
        log.error("JavaScript decoder suspended: it keeps timing out; its uplinks go out undecoded until then",
                  decoder=job.record.id, organization=job.organization, timeouts=timeouts, seconds=seconds,
                  until=datetime.fromtimestamp(time.time() + seconds, UTC).isoformat(timespec="seconds"))

    # --- helpers ---------------------------------------------------------------------------------
    def _counters(self, decoder_id: str) -> DecoderCounters:
        counters = self.counters.get(decoder_id)
        if counters is None:
            counters = self.counters[decoder_id] = DecoderCounters()
        return counters

    def _finish(self, job: JsJob, answer: Answer) -> None:
        try:
            job.done(answer)
        except Exception:  # the continuation's own failure must not break the pool
            log.exception("JavaScript decoder continuation failed", decoder=job.record.id)
