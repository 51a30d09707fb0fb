"""A consumer's request slots: bounded, and a free slot goes to a waiting live send before any backlog send
(with a first-come semaphore a retry pass's queued backlog requests kept live messages waiting behind all of
them after an outage: 5 s late measured, strict order by accident)."""

from __future__ import annotations

import asyncio

from distributor.delivery.slots import Slots


async def test_live_sends_go_before_waiting_backlog_sends() -> None:
    slots = Slots(2)
    order: list[str] = []
    gate = asyncio.Event()

    async def send(kind: str, name: str) -> None:
        async with slots.live() if kind == "live" else slots.backlog():
            order.append(name)
            await gate.wait()

    first = [asyncio.create_task(send("backlog", f"b{i}")) for i in range(2)]       # take both slots
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(send("backlog", f"b{i}")) for i in range(2, 6)]
    await asyncio.sleep(0)
    live = [asyncio.create_task(send("live", f"l{i}")) for i in range(2)]
    await asyncio.sleep(0.01)
    assert order == ["b0", "b1"] and slots.in_use == 2
    gate.set()
    await asyncio.gather(*first, *waiting, *live)
    assert order[2:4] == ["l0", "l1"] and order[4:] == ["b2", "b3", "b4", "b5"]
    assert slots.in_use == 0


async def test_never_more_than_the_size_at_once() -> None:
    slots = Slots(3)
    most = [0]

    async def send(live: bool) -> None:
        async with slots.live() if live else slots.backlog():
            most[0] = max(most[0], slots.in_use)
            await asyncio.sleep(0.001)

    await asyncio.gather(*(send(i % 3 == 0) for i in range(60)))
    assert most[0] == 3 and slots.in_use == 0


async def test_a_cancelled_waiter_does_not_lose_a_slot() -> None:
    slots = Slots(1)
    holder_done = asyncio.Event()

    async def hold() -> None:
        async with slots.backlog():
            await holder_done.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    live, backlog = slots.live(), slots.backlog()
    cancelled = asyncio.create_task(live.__aenter__())
    handed = asyncio.create_task(backlog.__aenter__())
    await asyncio.sleep(0)
    live_waiter = slots._live[0]
    holder_done.set()
    while not live_waiter.done():       # the slot is handed to the live waiter...
        await asyncio.sleep(0)
    cancelled.cancel()                  # ...which is cancelled before it runs: the slot moves on
    await asyncio.gather(holder, cancelled, return_exceptions=True)
    await asyncio.wait_for(handed, 1)
    assert slots.in_use == 1
    await backlog.__aexit__(None, None, None)
    assert slots.in_use == 0
