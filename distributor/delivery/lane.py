"""One consumer's lane: a bounded queue, a few workers, a circuit breaker, and the spill.

A lane never blocks ingest: when its queue is full, its circuit is open, a send fails, or a message
has not been *sent* within ``max_wait_s`` of entering the lane (the consumer is slow, hanging or
failing: it does not matter which), the items go to the durable spill store and their finalizers
are released once that write is committed. A slow or dead consumer therefore costs PostgreSQL rows,
never another consumer's latency, and never holds intake (the source's in-flight cap) for more
than about ``max_wait_s``. Waiting messages are found without a timer per message: a sweep of the
queue's head every ``max_wait_s / 8``, and the same check whenever a worker takes messages; a
message already being sent finishes or times out (the consumer's ``timeout_s``). And a message that
*cannot* be sent in time is not queued at all: while the consumer has more than it can take (its
queue was never empty for a whole ``max_wait_s``), the lane measures how many messages it took in
that time (live and retries), and spills at once what would queue beyond that. A slow consumer
therefore holds about its own throughput times ``max_wait_s`` (plus what is being sent), whatever
the stream's rate, never ``max_wait_s`` of the whole stream, which at a few thousand messages a
second would fill the source's in-flight window. A permanent refusal (e.g. HTTP 400) becomes a dead
letter at once, response kept.

``slots`` (the consumer's ``options.concurrency``) bounds the requests in flight to the consumer,
live sends and the retry worker's backlog sends together, live first (``slots.Slots``): a backlog
drains with the capacity live traffic leaves, never on top of it.

``options.order``: "fresh-first" (default) sends live messages while a backlog drains; "strict"
spills every new message while the consumer has a backlog (rows pending in PostgreSQL, or on their
way there), so they queue behind it and the retry worker drains them all in arrival order.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections import deque
from dataclasses import dataclass

import structlog

from distributor import waiting
from distributor.ack import Finalizer
from distributor.delivery.backlog import Backlog
from distributor.delivery.policy import CIRCUIT_VALUES, STRICT, CircuitBreaker, RetryPolicy, delivery_order
from distributor.delivery.slots import Slots
from distributor.delivery.spill import SpillRow, SpillStore
from distributor.delivery.stats import ConsumerStats
from distributor.metrics import Metrics
from distributor.sinks.base import DeliveryError, Outgoing, Sink
from registry.records import Consumer

log = structlog.get_logger("iotd.delivery")


@dataclass(slots=True)
class Pending:
    item: Outgoing
    finalizer: Finalizer
    received_at: float
    queued_at: float = 0.0          # monotonic time it entered the lane's queue


class ConsumerLane:
    def __init__(self, consumer: Consumer, sink: Sink, spill: SpillStore, metrics: Metrics, *,
                 policy: RetryPolicy | None = None, breaker: CircuitBreaker | None = None,
                 queue_size: int = 10_000, concurrency: int = 4, max_batch: int = 256, max_wait_s: float = 2.0,
                 backlog: Backlog | None = None) -> None:
        self.consumer = consumer
        self.sink = sink
        self.policy = policy or RetryPolicy()
        self.breaker = breaker or CircuitBreaker()
        self.stats = ConsumerStats()
        self._spill = spill
        self._metrics = metrics
        self._queue: deque[Pending] = deque()
        self._queue_size = queue_size
        self._concurrency = max(1, concurrency)
        self.slots = Slots(self._concurrency)          # requests in flight, live and backlog together
        self.strict = delivery_order(consumer.options) == STRICT
        self._max_wait_s = max_wait_s
        self._backlog = backlog or Backlog()
        self._spilling = 0              # rows handed to the spill store, not yet committed
        # throughput while loaded: messages delivered per second over a window of max_wait_s in which the queue
        # never ran empty or messages were turned away (None: it kept up, or there is no such window yet)
        self.capacity: float | None = None
        self._delivered = 0
        self._window_start, self._window_delivered, self._loaded = time.monotonic(), 0, False
        self._turned_away = False
        # HTTP sends `batch_size` messages per request; MQTT publishes up to max_batch concurrently
        self.batch = consumer.batch_size if consumer.kind == "http" else max_batch
        self._batch_wait_s = consumer.batch_wait_ms / 1000
        self._wake = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self._sweeper: asyncio.Task[None] | None = None
        self._busy = 0
        self._closing = False
        self._m_ok = metrics.delivered.labels(consumer.id, "ok")
        self._m_spilled = metrics.delivered.labels(consumer.id, "spilled")
        self._m_failed = metrics.delivered.labels(consumer.id, "failed")
        self._m_latency = metrics.latency.labels(consumer.kind)
        self._m_circuit = metrics.circuit.labels(consumer.id)

    async def start(self) -> None:
        self._workers = [asyncio.create_task(self._work(), name=f"lane-{self.consumer.name}-{i}")
                         for i in range(self._concurrency)]
        self._sweeper = asyncio.create_task(self._sweep_every(max(0.01, self._max_wait_s / 8)),
                                            name=f"lane-{self.consumer.name}-sweep")
        await self.sink.start()

    def offer(self, pending: Pending) -> None:
        """Take a message for this consumer; spills at once when full or the circuit is open. Never blocks."""
        pending.finalizer.hold()
        if self._closing:
            self._spill_batch([pending], "shutting down", None, attempts=0)
        elif not self.breaker.allows_live():
            self._spill_batch([pending], f"circuit {self.breaker.state}", None, attempts=0)
        elif self.strict and self.has_backlog:
            self._spill_batch([pending], "behind the backlog (strict order)", None, attempts=0)
        elif len(self._queue) >= self._queue_size:
            self._spill_batch([pending], "queue full", None, attempts=0)
        elif self.capacity is not None and len(self._queue) >= self._in_time():
            self._turned_away = True
            self._spill_batch([pending], f"consumer behind: would wait over {self._max_wait_s:g} s", None, attempts=0)
        else:
            pending.queued_at = time.monotonic()
            self._queue.append(pending)
            self._wake.set()

    @property
    def depth(self) -> int:
        return len(self._queue)

    @property
    def concurrency(self) -> int:
        return self._concurrency

    @property
    def idle(self) -> bool:
        return not self._queue and self._busy == 0

    @property
    def has_backlog(self) -> bool:
        """Whether deliveries of this consumer wait in PostgreSQL (or are on their way there)."""
        return self._spilling > 0 or self._backlog.count(self.consumer.id) > 0

    def _in_time(self) -> float:
        """How many queued messages the consumer takes within ``max_wait_s`` at its measured capacity."""
        return max(float(self._concurrency * self.batch), (self.capacity or 0.0) * self._max_wait_s)

    def measure(self, now: float) -> None:
        """Close the throughput window when it is ``max_wait_s`` long; called with every sweep."""
        self._loaded = self._loaded and bool(self._queue)
        elapsed = now - self._window_start
        if elapsed < self._max_wait_s:
            return
        loaded = self._loaded or self._turned_away
        self.capacity = (self._delivered - self._window_delivered) / elapsed if loaded else None
        self._window_start, self._window_delivered, self._loaded = now, self._delivered, bool(self._queue)
        self._turned_away = False

    def sweep(self, now: float) -> int:
        """Spill what waited ``max_wait_s`` unsent (in strict order, the whole queue behind it); returns how many."""
        queue, cutoff = self._queue, now - self._max_wait_s
        if not queue or queue[0].queued_at > cutoff:
            return 0
        if self.strict:
            late = list(queue)
            queue.clear()
        else:
            late = []
            while queue and queue[0].queued_at <= cutoff:
                late.append(queue.popleft())
        self._spill_batch(late, f"not sent within {self._max_wait_s:g} s", None, attempts=0)
        return len(late)

    async def _sweep_every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            self.sweep(now)
            self.measure(now)

    async def _ready(self) -> None:
        """Until there is something to send (after ``batch_wait_ms`` when it is less than a batch)."""
        while not self._queue:
            self._loaded = False         # it keeps up: the queue ran empty
            self._wake.clear()
            await self._wake.wait()
        if self._batch_wait_s and len(self._queue) < self.batch:
            await asyncio.sleep(self._batch_wait_s)

    def _take(self) -> list[Pending]:
        self.sweep(time.monotonic())
        n = min(self.batch, len(self._queue))
        return [self._queue.popleft() for _ in range(n)]

    async def _work(self) -> None:
        while True:
            await self._ready()
            async with self.slots.live():  # messages stay in the queue (in reach of the sweep) until a slot is free
                batch = self._take()
                if batch:
                    await self._deliver(batch)

    async def _deliver(self, batch: list[Pending]) -> None:
        self._busy += 1
        try:
            await self.send([p.item for p in batch])
        except asyncio.CancelledError:
            self._spill_batch(batch, "shutting down", None, attempts=1)
            raise
        except DeliveryError as exc:
            self.failed(len(batch), exc)
            self._spill_batch(batch, exc.detail, exc.status, attempts=1,
                              delay_s=self.policy.backoff(1, exc.retry_after),
                              dead_reason=None if exc.retryable else "refused by the consumer",
                              response=exc.response)
            if self.strict and self._queue:  # the queue must not overtake the failed batch
                rest = list(self._queue)
                self._queue.clear()
                self._spill_batch(rest, "behind the backlog (strict order)", None, attempts=0)
        else:
            now = time.time()
            self.succeeded(len(batch))
            for p in batch:
                self._m_latency.observe(now - p.received_at)
                p.finalizer.release(True)
        finally:
            self._busy -= 1

    async def send(self, items: list[Outgoing]) -> None:
        """The sink's ``send``, for the lane and the retry worker alike: any other exception than a
        ``DeliveryError`` (a sink bug, aiohttp's ``ValueError`` for a header it refuses, ...) becomes a
        retryable ``DeliveryError("internal error: <type>")``, so the attempt is counted like any failure
        and the retry policy dead-letters the delivery in the end instead of retrying it forever."""
        try:
            await self.sink.send(items)
        except DeliveryError:
            raise
        except Exception as exc:  # logged without its text, which may hold a URL with credentials
            where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
            log.error("sink raised; counted as a failed attempt", consumer=self.consumer.id,
                      message_id=items[0].message_id if items else None, error_type=type(exc).__name__,
                      at=f"{where.filename}:{where.lineno}" if where else None)
            raise DeliveryError(f"internal error: {type(exc).__name__}") from exc

    # --- outcomes, shared with the retry worker -------------------------------------------------
    def succeeded(self, n: int) -> None:
        self._delivered += n
        self._m_ok.inc(n)
        self.stats.success(n)
        if self.breaker.state != "closed":
            log.info("consumer recovered; circuit closed", consumer=self.consumer.id)
        self.breaker.success()
        self._circuit_changed()

    def failed(self, n: int, exc: DeliveryError) -> None:
        self._m_failed.inc(n)
        self.stats.failure(n, exc.detail, exc.status)
        before = self.breaker.state
        self.breaker.failure(time.monotonic())
        self._circuit_changed()
        log.warning("delivery failed", consumer=self.consumer.id, error=exc.detail, status=exc.status,
                    retryable=exc.retryable, circuit=self.breaker.state)
        if before != "open" and self.breaker.state == "open":
            log.error("consumer failing; circuit opened", consumer=self.consumer.id,
                      failures=self.breaker.failures, cooldown_s=self.breaker.cooldown_s)

    def _circuit_changed(self) -> None:
        self.stats.circuit = self.breaker.state
        self._m_circuit.set(CIRCUIT_VALUES[self.breaker.state])

    def spill(self, items: list[Outgoing], error: str, status: int | None, *, attempts: int, delay_s: float = 0.0,
              dead_reason: str | None = None, response: str | None = None) -> asyncio.Future[None]:
        """Counted (and, when refused for good, logged) hand-over of these messages to the spill store, for the
        lane and for replay jobs alike; the future resolves once they are durable."""
        self._m_spilled.inc(len(items))
        self._metrics.spilled.labels(self.consumer.id).inc(len(items))
        if dead_reason is not None:
            self._metrics.dead_letters.labels(self.consumer.id).inc(len(items))
            log.error("permanently refused; dead-lettered", consumer=self.consumer.id,
                      message_id=items[0].message_id, status=status, error=error)
        return self._spill.add([SpillRow(self.consumer.id, item, attempts, error, status, delay_s, dead_reason,
                                         response) for item in items])

    def _spill_batch(self, batch: list[Pending], error: str, status: int | None, *, attempts: int,
                     delay_s: float = 0.0, dead_reason: str | None = None, response: str | None = None) -> None:
        done = self.spill([p.item for p in batch], error, status, attempts=attempts, delay_s=delay_s,
                          dead_reason=dead_reason, response=response)
        self._spilling += len(batch)

        def release(_: asyncio.Future[None]) -> None:
            self._spilling -= len(batch)
            for p in batch:
                p.finalizer.release(True)

        done.add_done_callback(release)

    async def drain(self, deadline: float) -> None:
        """Stop taking new work, deliver what is queued until the deadline, spill the rest."""
        self._closing = True
        await waiting.until(lambda: self.idle, deadline)
        tasks = [*self._workers, *([self._sweeper] if self._sweeper else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        rest = list(self._queue)
        self._queue.clear()
        if rest:
            self._spill_batch(rest, "shutting down", None, attempts=0)

    async def close(self) -> None:
        await self.sink.close()
