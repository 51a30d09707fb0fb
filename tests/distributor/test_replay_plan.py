"""The pure parts of replay jobs: read windows, the rate limit, which stored messages go, and how the retry
worker keeps a replay's retries in requests of their own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from distributor.delivery.retry import chunked
from distributor.replay_plan import BURST_S, MAX_WINDOW, MIN_WINDOW, FirstCopies, Pacer, Window, wanted
from registry.cache import Snapshot
from registry.records import Consumer, Device, Subscription

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def test_the_window_shrinks_while_full_and_grows_while_sparse_within_bounds() -> None:
    w = Window(rows=100, width=timedelta(hours=1))
    assert w.end(T0, T0 + timedelta(minutes=10)) == T0 + timedelta(minutes=10)   # never past the limit
    assert w.read(100) is True and w.width == timedelta(minutes=30)
    assert w.read(50) is False and w.width == timedelta(minutes=30)              # about right: kept
    assert w.read(3) is False and w.width == timedelta(hours=1)
    for _ in range(40):
        w.read(0)
    assert w.width == MAX_WINDOW
    for _ in range(60):
        w.read(100)
    assert w.width == MIN_WINDOW


def test_the_pacer_keeps_the_rate_with_a_small_burst() -> None:
    p = Pacer(100)
    assert p.delay(5, now=10.0) == 0.0            # the burst earned while idle (BURST_S: 5 messages at 100/s)
    assert p.delay(10, now=10.0) == 0.0           # booked ahead ...
    assert abs(p.delay(10, now=10.0) - 0.1) < 1e-9  # ... then it waits for what was booked
    assert p.delay(50, now=20.0) == 0.0           # idle time earns no more than the burst
    assert abs(p.delay(10, now=20.0) - (0.5 - BURST_S)) < 1e-9


def _snapshot(subs: list[Subscription]) -> tuple[Snapshot, Device]:
    snap = Snapshot()
    device = Device(id="d1", application_id="a1", organization_id="o1", name="well", kind="nbiot", decoder=None)
    snap.devices[device.id] = device
    for cid in ("c1", "c2"):
        snap.consumers[cid] = Consumer(id=cid, organization_id="o1", name=cid, kind="http", url="http://x")
    snap.subscriptions = subs
    return snap, device


def test_a_replay_sends_what_the_consumer_is_subscribed_to_now() -> None:
    snap, device = _snapshot([Subscription("s1", "c1", application_id="a1"), Subscription("s2", "c2", "other")])
    assert wanted(snap, "c1", device, 100.0, None)
    assert not wanted(snap, "c2", device, 100.0, None)


def test_a_backfill_skips_what_another_subscription_of_the_consumer_delivered_live() -> None:
    backfill = Subscription("s2", "c1", device_ids=("d1",), since=500.0, live_from=505.0)
    older = Subscription("s1", "c1", application_id="a1", since=300.0)
    snap, device = _snapshot([older, backfill])
    assert wanted(snap, "c1", device, 200.0, backfill)      # before the older subscription existed
    assert not wanted(snap, "c1", device, 400.0, backfill)  # the older one delivered it live
    alone, device = _snapshot([backfill])
    assert wanted(alone, "c1", device, 400.0, backfill)
    other_device = Device(id="d2", application_id="a1", organization_id="o1", name="x", kind="nbiot", decoder=None)
    assert not wanted(alone, "c1", other_device, 400.0, backfill)


def test_a_message_stored_twice_goes_out_once_and_memory_stays_bounded() -> None:
    copies = FirstCopies(size=3)
    assert [copies.first(m) for m in ("a", "b", "a", "c", "d", "e", "a")] == [True, True, False, True, True, True,
                                                                            True]


def test_live_consumers_hold_back_stored_messages_before_a_backfills_seam() -> None:
    seam = Subscription("s2", "c2", application_id="a1", since=500.0, live_from=505.0)
    snap, device = _snapshot([Subscription("s1", "c1", application_id="a1"), seam])
    snap.gated = True
    assert [c.id for c in snap.live_consumers(device, 504.9)] == ["c1"]
    assert [c.id for c in snap.live_consumers(device, 505.0)] == ["c1", "c2"]


def test_retries_of_a_replay_never_share_a_request_with_other_messages() -> None:
    def row(n: int, replay: str | None = None) -> dict[str, Any]:
        return {"id": n, "topic_vars": {"replay": replay} if replay else {}}

    rows = [row(1), row(2), row(3, "j"), row(4, "j"), row(5, "j"), row(6), row(7, "k")]
    chunks = chunked(rows, 2)  # type: ignore[arg-type]
    assert [[r["id"] for r in c] for c in chunks] == [[1, 2], [3, 4], [5], [6], [7]]
