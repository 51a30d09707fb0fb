"""A consumer lane never holds a message's acknowledgement for longer than about ``max_wait_s`` (issue 14,
finding 2): whatever keeps the consumer from taking it (slow, hanging, failing), an unsent message is
handed to the spill and its hold released once that write is done. Strict order spills new messages
behind a backlog. No I/O: a sink and a spill store that only record what they are given.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from distributor.ack import Finalizer
from distributor.delivery.backlog import Backlog
from distributor.delivery.lane import ConsumerLane, Pending
from distributor.delivery.spill import SpillRow
from distributor.metrics import Metrics
from distributor.sinks.base import DeliveryError, Outgoing
from registry.records import Consumer


class Sink:
    """Answers after ``delay`` seconds (None: never), or fails with ``error``; counts concurrent sends."""

    def __init__(self, delay: float | None = 0.0, error: DeliveryError | None = None) -> None:
        self.delay, self.error = delay, error
        self.sent: list[str] = []
        self.in_flight = self.most_in_flight = 0

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def send(self, batch: list[Outgoing]) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.delay is None:
                await asyncio.Event().wait()
            await asyncio.sleep(self.delay)
            if self.error is not None:
                raise self.error
            self.sent.extend(o.message_id for o in batch)
        finally:
            self.in_flight -= 1


class Spill:
    """Commits every row at once (or holds the commit while ``hold`` is set)."""

    def __init__(self) -> None:
        self.rows: list[SpillRow] = []
        self.hold: asyncio.Event | None = None

    def add(self, rows: list[SpillRow]) -> asyncio.Future[None]:
        self.rows.extend(rows)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.hold is None:
            done.set_result(None)
        else:
            asyncio.get_running_loop().create_task(self._later(done, self.hold))
        return done

    @staticmethod
    async def _later(done: asyncio.Future[None], gate: asyncio.Event) -> None:
        await gate.wait()
        done.set_result(None)


def lane(sink: Sink, spill: Spill, *, max_wait_s: float = 0.2, concurrency: int = 1, order: str | None = None,
         backlog: Backlog | None = None, **consumer: Any) -> ConsumerLane:
    options = {"order": order} if order else {}
    c = Consumer(id="c1", organization_id="o1", name="hook", kind="http", url="https://example.org/h",
                 options=options, **consumer)
    return ConsumerLane(c, sink, spill, Metrics(), concurrency=concurrency,  # type: ignore[arg-type]
                        max_wait_s=max_wait_s, backlog=backlog)


def offer(target: ConsumerLane, n: int, first: int = 0) -> list[asyncio.Future[bool]]:
    """Offer n messages the way the pipeline does (its own hold released after routing)."""
    futures = []
    for i in range(first, first + n):
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        fin = Finalizer(lambda ok, d=done: d.done() or d.set_result(ok))
        target.offer(Pending(Outgoing(f"m{i}", b"{}", {}), fin, time.time()))
        fin.release(True)
        futures.append(done)
    return futures


@pytest.mark.parametrize("sink", [Sink(delay=None), Sink(delay=5.0)], ids=["hanging", "slow"])
async def test_unsent_messages_are_spilled_and_acknowledged_within_max_wait(sink: Sink) -> None:
    spill = Spill()
    target = lane(sink, spill, max_wait_s=0.2)
    await target.start()
    try:
        acked = offer(target, 50)
        started = time.monotonic()
        async with asyncio.timeout(2):
            assert all(await asyncio.gather(*acked[1:]))    # the first one is being sent: it finishes or times out
        waited = time.monotonic() - started
        assert waited < 0.2 + 0.2, f"held {waited:.2f} s"
        assert [r.item.message_id for r in spill.rows] == [f"m{i}" for i in range(1, 50)]
        assert {r.error for r in spill.rows} == {"not sent within 0.2 s"} and {r.attempts for r in spill.rows} == {0}
        assert target.depth == 0
    finally:
        await target.drain(asyncio.get_running_loop().time())


async def test_a_taken_message_that_waited_too_long_is_spilled_not_sent() -> None:
    """The check when messages are taken: what waited past max_wait behind a busy slot is not sent late."""
    sink, spill = Sink(delay=0.0), Spill()
    target = lane(sink, spill, max_wait_s=60)
    await target.start()
    try:
        async with target.slots.backlog():       # every slot busy (e.g. with the retry worker's backlog)
            offer(target, 3)
            await asyncio.sleep(0.05)
            target._max_wait_s = 0.01            # they are now "too old"; the periodic sweep has not run yet
            await asyncio.sleep(0.02)
        async with asyncio.timeout(2):
            while len(spill.rows) < 3:
                await asyncio.sleep(0.01)
        assert sink.sent == []
    finally:
        await target.drain(asyncio.get_running_loop().time())


async def test_a_healthy_consumer_sends_everything_live() -> None:
    sink, spill = Sink(delay=0.001), Spill()
    target = lane(sink, spill, max_wait_s=1.0, concurrency=4)
    await target.start()
    try:
        acked = offer(target, 200)
        async with asyncio.timeout(5):
            await asyncio.gather(*acked)
        assert sorted(sink.sent, key=lambda m: int(m[1:])) == [f"m{i}" for i in range(200)] and not spill.rows
        assert sink.most_in_flight <= 4
    finally:
        await target.drain(asyncio.get_running_loop().time())


async def test_slots_bound_live_and_backlog_sends_together() -> None:
    """The retry worker takes the same slots: while it holds them all, live sends wait (and may spill)."""
    sink, spill = Sink(delay=0.0), Spill()
    target = lane(sink, spill, max_wait_s=5, concurrency=2)
    await target.start()
    try:
        async with target.slots.backlog(), target.slots.backlog():
            offer(target, 5)
            await asyncio.sleep(0.1)
            assert sink.sent == [] and target.depth == 5
        async with asyncio.timeout(2):
            while len(sink.sent) < 5:
                await asyncio.sleep(0.01)
    finally:
        await target.drain(asyncio.get_running_loop().time())


async def test_strict_order_spills_new_messages_behind_a_backlog_and_fresh_first_does_not() -> None:
    backlog = Backlog()
    backlog.stored({"c1": 3})
    strict_sink, fresh_sink, strict_spill = Sink(), Sink(), Spill()
    strict, fresh = (lane(strict_sink, strict_spill, order="strict", backlog=backlog),
                     lane(fresh_sink, Spill(), order="fresh-first", backlog=backlog))
    for target in (strict, fresh):
        await target.start()
    try:
        offer(strict, 3)
        offer(fresh, 3)
        await asyncio.sleep(0.05)
        assert strict_sink.sent == [] and fresh_sink.sent == ["m0", "m1", "m2"]
        assert [r.error for r in strict_spill.rows] == ["behind the backlog (strict order)"] * 3
        backlog.removed("c1", 3)                 # drained: live again
        offer(strict, 1, first=3)
        await asyncio.sleep(0.05)
        assert strict_sink.sent == ["m3"]
    finally:
        for target in (strict, fresh):
            await target.drain(asyncio.get_running_loop().time())


async def test_strict_order_keeps_spilling_while_its_spill_is_not_yet_committed() -> None:
    spill = Spill()
    spill.hold = asyncio.Event()
    sink = Sink(error=DeliveryError("HTTP 503", status=503))
    target = lane(sink, spill, order="strict")
    await target.start()
    try:
        offer(target, 1)
        async with asyncio.timeout(2):
            while not spill.rows:
                await asyncio.sleep(0.01)
        offer(target, 2, first=1)                # the failed one is on its way to PostgreSQL: these go behind it
        assert [r.item.message_id for r in spill.rows] == ["m0", "m1", "m2"] and sink.sent == []
        spill.hold.set()
    finally:
        await target.drain(asyncio.get_running_loop().time())


async def test_strict_order_spills_the_queue_behind_a_failed_batch() -> None:
    sink, spill = Sink(delay=0.05, error=DeliveryError("HTTP 503", status=503)), Spill()
    target = lane(sink, spill, order="strict", max_wait_s=10)
    await target.start()
    try:
        offer(target, 5)
        async with asyncio.timeout(2):
            while len(spill.rows) < 5:
                await asyncio.sleep(0.01)
        assert [r.item.message_id for r in spill.rows] == [f"m{i}" for i in range(5)]
        assert spill.rows[0].attempts == 1 and {r.attempts for r in spill.rows[1:]} == {0}
    finally:
        await target.drain(asyncio.get_running_loop().time())


async def test_a_consumer_that_cannot_keep_up_holds_only_what_it_can_send_in_time() -> None:
    """At 1,000 messages/s to a consumer taking 10/s, waiting ``max_wait_s`` for each message would hold
    ~200 acknowledgements at any time (the sweep alone); measured capacity holds about what it can send."""
    sink, spill = Sink(delay=0.1), Spill()
    target = lane(sink, spill, max_wait_s=0.2)
    await target.start()
    held: list[int] = []
    try:
        acked: list[asyncio.Future[bool]] = []
        for tick in range(100):                    # 1 s at 1,000 messages/s
            acked += offer(target, 10, first=tick * 10)
            await asyncio.sleep(0.01)
            if tick >= 70:                         # after a few windows of max_wait_s
                held.append(sum(not a.done() for a in acked))
        assert target.capacity is not None and target.capacity < 20
        assert max(held) <= 20, f"held up to {max(held)} acknowledgements"
        assert {r.error for r in spill.rows} >= {"consumer behind: would wait over 0.2 s"}
    finally:
        await target.drain(asyncio.get_running_loop().time())


async def test_a_consumer_that_keeps_up_again_gets_its_messages_live_again() -> None:
    sink, spill = Sink(delay=0.1), Spill()
    target = lane(sink, spill, max_wait_s=0.2)
    await target.start()
    try:
        for tick in range(50):
            offer(target, 10, first=tick * 10)
            await asyncio.sleep(0.01)
        assert target.capacity is not None
        sink.delay = 0.0
        for tick in range(50, 100):                # 100 messages/s now: it keeps up
            offer(target, 1, first=tick * 10)
            await asyncio.sleep(0.01)
        assert target.capacity is None
        spilled = len(spill.rows)
        offer(target, 5, first=10_000)
        await asyncio.sleep(0.05)
        assert len(spill.rows) == spilled and sink.sent[-5:] == [f"m{i}" for i in range(10_000, 10_005)]
    finally:
        await target.drain(asyncio.get_running_loop().time())
