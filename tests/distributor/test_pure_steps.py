"""Pure steps as tables: acknowledgements, de-duplication, ids, routing."""

from __future__ import annotations

import uuid

import pytest

from distributor.ack import Finalizer
from distributor.dedup import SeenWindow
from distributor.envelope import build_message, iso_utc, message_id
from distributor.model import Message
from registry.cache import Snapshot
from registry.records import Consumer, Device, Subscription


def test_finalizer_fires_once_after_every_piece() -> None:
    fired: list[bool] = []
    f = Finalizer(fired.append)
    f.hold(2)
    f.release(True)
    f.release(True)
    assert fired == []
    f.release(True)
    assert fired == [True]
    with pytest.raises(RuntimeError):
        f.hold()


def test_finalizer_reports_the_worst_outcome() -> None:
    fired: list[bool] = []
    f = Finalizer(fired.append)
    f.hold()
    f.release(False)
    f.release(True)
    assert fired == [False]


def test_seen_window_expires_and_bounds() -> None:
    now = [0.0]
    w = SeenWindow(window_s=10, max_keys=3, clock=lambda: now[0])
    assert not w.seen("a")
    assert w.seen("a")
    now[0] = 11
    assert not w.seen("a")  # expired, seen afresh
    w = SeenWindow(window_s=10, max_keys=4, clock=lambda: now[0])
    for k in "abcdefg":
        w.seen(k)
    assert len(w) <= 4                                  # bounded by max_keys
    assert all(w.seen(k) for k in "fg")                 # the newest max_keys // 2 are always remembered


@pytest.mark.parametrize(("a", "b", "same"), [("chirpstack:x", "chirpstack:x", True),
                                              ("chirpstack:x", "chirpstack:y", False)])
def test_message_id_is_deterministic(a: str, b: str, same: bool) -> None:
    assert (message_id(a) == message_id(b)) is same
    parsed = uuid.UUID(message_id(a))
    assert parsed.version == 8


DEV = Device(id="d1", application_id="a1", organization_id="o1", name="n", kind="lorawan", decoder="elsys",
             dev_eui="a81758fffe0312ab", tags={"floor": "2"})


@pytest.mark.parametrize(("sub", "matches"), [
    (Subscription("s", "c", application_id="a1"), True),
    (Subscription("s", "c", application_id="a2"), False),
    (Subscription("s", "c", device_ids=("d1", "d9")), True),
    (Subscription("s", "c", device_ids=("d9",)), False),
    (Subscription("s", "c", decoder="elsys"), True),
    (Subscription("s", "c", decoder="milesight-am307"), False),
    (Subscription("s", "c", tags={"floor": "2"}), True),
    (Subscription("s", "c", tags={"floor": "3"}), False),
    (Subscription("s", "c", application_id="a1", tags={"floor": "3"}), False),
])
def test_subscription_matching(sub: Subscription, matches: bool) -> None:
    assert sub.matches(DEV) is matches


def test_routing_never_crosses_organizations_and_skips_disabled() -> None:
    own = Consumer("c1", "o1", "own", "http", "http://x")
    foreign = Consumer("c2", "o2", "foreign", "http", "http://y")
    off = Consumer("c3", "o1", "off", "http", "http://z", enabled=False)
    snap = Snapshot(consumers={c.id: c for c in (own, foreign, off)},
                    subscriptions=[Subscription("s1", "c1", application_id="a1"),
                                   Subscription("s2", "c2", application_id="a1"),  # forged: other tenant
                                   Subscription("s3", "c3", application_id="a1"),
                                   Subscription("s4", "c1", decoder="elsys")])
    assert snap.consumers_for(DEV) == (own,)


def test_built_message_conforms_to_the_model() -> None:
    msg = build_message(msg_id=message_id("k"), received_at=1795341600.123, measured_at="2026-11-22T10:00:00Z",
                        device=DEV, network={"kind": "lorawan", "dev_eui": DEV.dev_eui, "radio": []},
                        payload=b"\x01", decoder_version=None, result=None, measurements=[])
    parsed = Message.model_validate(msg)
    assert parsed.received_at == "2026-11-22T10:00:00.123Z" == iso_utc(1795341600.123)
    assert msg["decoder"]["status"] == "error" and "not installed" in msg["decoder"]["errors"][0]
