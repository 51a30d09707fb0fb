"""Keeps one lane per registered consumer, in step with the registry cache, and fans messages out."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog

from distributor.ack import Finalizer
from distributor.delivery.backlog import Backlog
from distributor.delivery.lane import ConsumerLane, Pending
from distributor.delivery.policy import CircuitBreaker, RetryPolicy, bounded_option
from distributor.delivery.spill import SpillRow, SpillStore
from distributor.formats import render
from distributor.metrics import Metrics
from distributor.sinks.base import Outgoing, Sink
from registry.records import Consumer

log = structlog.get_logger("iotd.delivery")

SinkFactory = Callable[[Consumer], Sink]
MAX_CONCURRENCY = 64        # requests in flight per consumer: the HTTP sink's connection pool (CONNECTIONS_PER_SINK)


class Dispatcher:
    def __init__(self, sink_factory: SinkFactory, spill: SpillStore, metrics: Metrics,
                 queue_size: int = 10_000, http_concurrency: int = 8, policy: RetryPolicy | None = None,
                 breaker: Callable[[], CircuitBreaker] = CircuitBreaker, max_wait_s: float = 2.0,
                 backlog: Backlog | None = None) -> None:
        self._policy = policy or RetryPolicy()
        self._max_wait_s = max_wait_s
        self.backlog = backlog or Backlog()
        self._breaker = breaker
        self._sink_factory = sink_factory
        self._spill = spill
        self._metrics = metrics
        self._queue_size = queue_size
        self._http_concurrency = http_concurrency
        self.lanes: dict[str, ConsumerLane] = {}
        self._sync_lock = asyncio.Lock()

    async def sync(self, consumers: dict[str, Consumer]) -> None:
        """Open lanes for new or changed consumers, drain and close lanes of removed ones."""
        async with self._sync_lock:
            for cid, lane in list(self.lanes.items()):
                if consumers.get(cid) != lane.consumer:
                    del self.lanes[cid]
                    await self._retire(lane)
            for cid, consumer in consumers.items():
                if cid not in self.lanes and consumer.enabled:
                    lane = ConsumerLane(
                        consumer, self._sink_factory(consumer), self._spill, self._metrics,
                        queue_size=self._queue_size, policy=RetryPolicy.for_consumer(self._policy, consumer.options),
                        breaker=self._breaker(),
                        concurrency=int(bounded_option(consumer.options, "concurrency", self._http_concurrency
                                                       if consumer.kind == "http" else 4, 1, MAX_CONCURRENCY)),
                        max_wait_s=self._max_wait_s, backlog=self.backlog,
                    )
                    try:
                        await lane.start()
                    except Exception as exc:  # an unreachable consumer still gets a lane: sends spill
                        log.warning("consumer sink did not start cleanly", consumer=cid, error=str(exc))
                    self.lanes[cid] = lane

    async def _retire(self, lane: ConsumerLane) -> None:
        await lane.drain(asyncio.get_running_loop().time() + 5)
        await lane.close()

    def dispatch(self, message: dict[str, Any], raw_event: dict[str, Any] | None, consumers: tuple[Consumer, ...],
                 topic_vars: dict[str, str], finalizer: Finalizer, received_at: float,
                 rendered: dict[str, bytes] | None = None) -> int:
        """Offer a message to each consumer's lane (rendered once per format, ``rendered`` holding what is
        already); returns how many took it."""
        rendered = {} if rendered is None else rendered
        taken = 0
        for consumer in consumers:
            body = rendered.get(consumer.format)
            if body is None:
                body = rendered[consumer.format] = render(consumer.format, message, raw_event)
            item = Outgoing(message["id"], body, topic_vars)
            lane = self.lanes.get(consumer.id)
            if lane is None:  # its lane is being (re)opened: the spill store keeps the message
                self._spill_orphan(consumer, item, finalizer)
            else:
                lane.offer(Pending(item, finalizer, received_at))
            taken += 1
        return taken

    def _spill_orphan(self, consumer: Consumer, item: Outgoing, finalizer: Finalizer) -> None:
        finalizer.hold()
        self._metrics.spilled.labels(consumer.id).inc()
        done = self._spill.add([SpillRow(consumer.id, item, 0, "consumer lane not open yet", None)])
        done.add_done_callback(lambda _: finalizer.release(True))

    @property
    def queued(self) -> int:
        return sum(lane.depth for lane in self.lanes.values())

    async def drain(self, timeout: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        await asyncio.gather(*(lane.drain(deadline) for lane in self.lanes.values()))

    async def close(self) -> None:
        await asyncio.gather(*(lane.close() for lane in self.lanes.values()), return_exceptions=True)
