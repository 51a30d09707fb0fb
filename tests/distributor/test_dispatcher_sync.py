"""The dispatcher opens a lane for every consumer even when one consumer's free-form ``options`` hold values
that are not numbers: ``int("x")`` used to raise inside ``sync``, and then no consumer's lane opened (one
tenant's setting stopped every tenant's delivery)."""

from __future__ import annotations

from distributor.delivery.dispatcher import Dispatcher
from distributor.metrics import Metrics
from registry.records import Consumer
from tests.distributor.test_lane_max_wait import Sink, Spill


def consumer(cid: str, **options: object) -> Consumer:
    return Consumer(id=cid, organization_id="o1", name=cid, kind="http", url="https://example.org/h",
                    options=dict(options))


async def test_odd_options_do_not_stop_other_consumers_lanes() -> None:
    dispatcher = Dispatcher(lambda c: Sink(), Spill(), Metrics())  # type: ignore[arg-type]
    consumers = {c.id: c for c in (consumer("odd", concurrency="x", max_attempts="many", order=["strict"]),
                                   consumer("huge", concurrency=10**9), consumer("fine", concurrency=2))}
    try:
        await dispatcher.sync(consumers)
        assert set(dispatcher.lanes) == {"odd", "huge", "fine"}
        assert [dispatcher.lanes[c].concurrency for c in ("odd", "huge", "fine")] == [8, 64, 2]
        assert not dispatcher.lanes["odd"].strict
    finally:
        await dispatcher.drain(0)
        await dispatcher.close()
