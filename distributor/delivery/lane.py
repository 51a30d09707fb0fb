"""One consumer's lane: a bounded queue, a few workers, and the spill when the consumer can't keep up.

A lane never blocks ingest: when its queue is full, or a send fails, the items go to the
durable spill store and their finalizers are released once that write is committed. A slow
or dead consumer therefore costs PostgreSQL rows, never another consumer's latency.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

import structlog

from distributor.ack import Finalizer
from distributor.delivery.spill import SpillRow, SpillStore
from distributor.metrics import Metrics
from distributor.sinks.base import DeliveryError, Outgoing, Sink
from registry.records import Consumer

log = structlog.get_logger("iotd.delivery")


@dataclass(slots=True)
class Pending:
    item: Outgoing
    finalizer: Finalizer
    received_at: float


class ConsumerLane:
    def __init__(self, consumer: Consumer, sink: Sink, spill: SpillStore, metrics: Metrics,
                 queue_size: int = 10_000, concurrency: int = 4, max_batch: int = 256) -> None:
        self.consumer = consumer
        self._sink = sink
        self._spill = spill
        self._metrics = metrics
        self._queue: deque[Pending] = deque()
        self._queue_size = queue_size
        self._concurrency = concurrency
        # HTTP sends `batch_size` messages per request; MQTT publishes up to max_batch concurrently
        self._batch = consumer.batch_size if consumer.kind == "http" else max_batch
        self._batch_wait_s = consumer.batch_wait_ms / 1000
        self._wake = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self._busy = 0
        self._closing = False
        self._m_ok = metrics.delivered.labels(consumer.id, "ok")
        self._m_spilled = metrics.delivered.labels(consumer.id, "spilled")
        self._m_retry = metrics.delivered.labels(consumer.id, "retry")
        self._m_latency = metrics.latency.labels(consumer.kind)

    async def start(self) -> None:
        await self._sink.start()
        self._workers = [asyncio.create_task(self._work(), name=f"lane-{self.consumer.name}-{i}")
                         for i in range(self._concurrency)]

    def offer(self, pending: Pending) -> None:
        """Take a message for this consumer; spills at once when the queue is full. Never blocks."""
        pending.finalizer.hold()
        if len(self._queue) >= self._queue_size or self._closing:
            self._spill_batch([pending], "queue full" if not self._closing else "shutting down", None, attempts=0)
            return
        self._queue.append(pending)
        self._wake.set()

    @property
    def depth(self) -> int:
        return len(self._queue)

    @property
    def idle(self) -> bool:
        return not self._queue and self._busy == 0

    async def _take(self) -> list[Pending]:
        while not self._queue:
            self._wake.clear()
            await self._wake.wait()
        if self._batch_wait_s and len(self._queue) < self._batch:
            await asyncio.sleep(self._batch_wait_s)
        n = min(self._batch, len(self._queue))
        return [self._queue.popleft() for _ in range(n)]

    async def _work(self) -> None:
        while True:
            batch = await self._take()
            if not batch:
                continue
            self._busy += 1
            try:
                await self._sink.send([p.item for p in batch])
            except asyncio.CancelledError:
                self._spill_batch(batch, "shutting down", None, attempts=1)
                raise
            except DeliveryError as exc:
                self._m_retry.inc(len(batch))
                log.warning("delivery failed; spilled for retry", consumer=self.consumer.id,
                            message_id=batch[0].item.message_id, count=len(batch), error=exc.detail,
                            status=exc.status)
                self._spill_batch(batch, exc.detail, exc.status)
            except Exception as exc:  # a sink bug must not lose the batch
                log.exception("sink raised; spilled for retry", consumer=self.consumer.id,
                              message_id=batch[0].item.message_id)
                self._spill_batch(batch, f"{type(exc).__name__}: {exc}", None)
            else:
                now = time.time()
                self._m_ok.inc(len(batch))
                for p in batch:
                    self._m_latency.observe(now - p.received_at)
                    p.finalizer.release(True)
            finally:
                self._busy -= 1

    def _spill_batch(self, batch: list[Pending], error: str, status: int | None, attempts: int = 1) -> None:
        self._m_spilled.inc(len(batch))
        self._metrics.spilled.labels(self.consumer.id).inc(len(batch))
        done = self._spill.add([SpillRow(self.consumer.id, p.item, attempts, error, status) for p in batch])

        def release(_: asyncio.Future[None]) -> None:
            for p in batch:
                p.finalizer.release(True)

        done.add_done_callback(release)

    async def drain(self, deadline: float) -> None:
        """Stop taking new work, deliver what is queued until the deadline, spill the rest."""
        loop = asyncio.get_running_loop()
        self._closing = True
        while not self.idle and loop.time() < deadline:
            await asyncio.sleep(0.01)
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        rest = list(self._queue)
        self._queue.clear()
        if rest:
            self._spill_batch(rest, "shutting down", None, attempts=0)

    async def close(self) -> None:
        await self._sink.close()
