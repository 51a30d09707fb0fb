"""The intake gate's arithmetic and the session expiry a source asks for, as tables (no broker)."""

from __future__ import annotations

import pytest

from distributor.settings import Settings
from distributor.sources.chirpstack_mqtt import SHARED_SESSION_EXPIRY_S, WEEK_S, session_expiry_for
from distributor.sources.intake_gate import IntakeGate


def test_up_to_the_cap_starts_at_once_then_holds_in_order() -> None:
    gate: IntakeGate[str] = IntakeGate(cap=2, hold_limit=4)
    assert [gate.arrive(x) for x in "abcde"] == [True, True, False, False, False]
    assert gate.in_progress == 2 and list(gate.held) == ["c", "d", "e"]
    assert gate.next() is None                   # no free slot
    gate.finish()
    assert gate.next() == "c" and gate.next() is None
    gate.finish()
    gate.finish()
    assert [gate.next(), gate.next(), gate.next()] == ["d", "e", None]
    assert gate.in_progress == 2 and not gate.held


def test_an_arrival_never_overtakes_what_is_held() -> None:
    gate: IntakeGate[str] = IntakeGate(cap=1, hold_limit=4)
    assert gate.arrive("a") and not gate.arrive("b")
    gate.finish()                                 # a slot is free, but "b" came first
    assert gate.arrive("c") is False and list(gate.held) == ["b", "c"]


@pytest.mark.parametrize(("held", "full", "drained"), [(0, False, True), (2, False, True), (3, False, False),
                                                       (4, True, False), (6, True, False)])
def test_full_stops_reading_and_half_resumes_it(held: int, full: bool, drained: bool) -> None:
    gate: IntakeGate[int] = IntakeGate(cap=1, hold_limit=4)
    gate.arrive(-1)
    for i in range(held):
        gate.arrive(i)
    assert (gate.full, gate.drained) == (full, drained)


def test_forget_drops_what_a_lost_connection_delivered() -> None:
    gate: IntakeGate[tuple[str, int | None]] = IntakeGate(cap=1, hold_limit=10)
    for item in [("a", 1), ("b", 2), ("c", None), ("d", 3)]:
        gate.arrive(item)
    assert gate.forget(lambda item: item[1] is None) == 2     # QoS 1 held: the broker sends them again
    assert list(gate.held) == [("c", None)] and gate.in_progress == 1


def test_a_gate_needs_room() -> None:
    with pytest.raises(ValueError):
        IntakeGate(cap=0, hold_limit=1)


@pytest.mark.parametrize(("share_group", "expiry", "expected"), [
    (None, None, WEEK_S),                        # alone: a long outage loses nothing
    ("iotd", None, SHARED_SESSION_EXPIRY_S),     # a share-group member: its share waits at most an hour
    ("iotd", 600, 600),                          # the operator's choice wins
    (None, 0, 0),
])
def test_session_expiry(share_group: str | None, expiry: int | None, expected: int) -> None:
    settings = Settings(mqtt_share_group=share_group, mqtt_session_expiry_s=expiry)
    assert session_expiry_for(settings) == expected
