"""The pipeline's de-duplication step with its real neighbours' shapes (fake lanes, cache and state; no I/O):
a copy waits for the first copy's delivery, a copy of a done message is acked at once, a crashed path is not
remembered, unknown devices and device events are not de-duplicated (issue 14, finding 1).

Before: ``is_duplicate`` remembered a key on arrival, so a copy was released at once (acked) while the first was
still in a lane, and a path that raised still left its key behind as 'seen'.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from distributor.ack import Finalizer
from distributor.demo_feed import to_json, uplink_event
from distributor.metrics import Metrics
from distributor.pipeline import Pipeline
from distributor.sources.chirpstack import submit
from distributor.sources.chirpstack_parse import parse
from registry.records import Consumer, Device

EUI = "a81758fffe0312ab"
DEVICE = Device(id="d1", application_id="a1", organization_id="o1", name="n", kind="lorawan", decoder="elsys",
                dev_eui=EUI, tags={})
HOOK = Consumer("c1", "o1", "hook", "http", "http://hook.example")
FRAME = bytes.fromhex("0101170231")


class Snapshot:
    def __init__(self) -> None:
        self.known = True

    def lorawan_device(self, dev_eui: str, tenant_id: str | None, application_id: str | None) -> Device | None:
        return DEVICE if self.known else None

    def consumers_for(self, device: Device) -> tuple[Consumer, ...]:
        return (HOOK,)


class Cache:
    def __init__(self) -> None:
        self.snapshot = Snapshot()


class State:
    def __init__(self) -> None:
        self.unknown: list[str] = []
        self.events: list[str] = []

    def message(self, device_id: str, f_cnt: int | None, message: dict[str, Any]) -> None:
        pass

    def unknown_device(self, source: str, identifier: str, detail: dict[str, Any]) -> None:
        self.unknown.append(identifier)

    def event(self, device_id: str, event: str, detail: dict[str, Any], state: dict[str, Any]) -> None:
        self.events.append(event)


class Lanes:
    """A consumer lane that holds each message until the test finishes it; ``crash`` makes dispatch raise."""

    def __init__(self) -> None:
        self.held: list[tuple[str, Finalizer]] = []
        self.crash = False

    def dispatch(self, message: dict[str, Any], raw: Any, consumers: Any, topic_vars: Any, finalizer: Finalizer,
                 received_at: float, rendered: dict[str, bytes] | None = None) -> int:
        if self.crash:
            raise RuntimeError("a bug in the path")
        finalizer.hold()
        self.held.append((message["id"], finalizer))
        return 1

    def finish(self, ok: bool = True) -> None:
        held, self.held = self.held, []
        for _, finalizer in held:
            finalizer.release(ok)


@pytest.fixture
def world() -> tuple[Pipeline, Lanes, State, Cache]:
    lanes, state, cache = Lanes(), State(), Cache()
    return Pipeline(cache, lanes, state, Metrics()), lanes, state, cache  # type: ignore[arg-type]


def send(pipeline: Pipeline, body: bytes, acks: list[bool]) -> Finalizer:
    finalizer = Finalizer(acks.append)
    with contextlib.suppress(RuntimeError):   # the source sees the exception; the finalizer has the outcome
        submit(pipeline, parse("up", body), finalizer, "chirpstack-mqtt", 1.0)
    return finalizer


def test_a_copy_is_acked_only_with_its_first_copy(world: tuple[Pipeline, Lanes, State, Cache]) -> None:
    pipeline, lanes, _, _ = world
    body = to_json(uplink_event(dev_eui=EUI, data=FRAME, f_cnt=1))
    first: list[bool] = []
    copy: list[bool] = []
    send(pipeline, body, first)
    send(pipeline, body, copy)
    assert first == [] and copy == [], "the copy was acked while its first copy was still in the lane"
    assert len(lanes.held) == 1                      # delivered once
    lanes.finish()
    assert first == [True] and copy == [True]
    later: list[bool] = []
    send(pipeline, body, later)
    assert later == [True] and lanes.held == []       # a copy of a done message: acked at once, not delivered


def test_a_failed_first_copy_fails_its_copy_and_a_later_copy_goes_out(world: tuple[Pipeline, Lanes, State, Cache]
                                                                      ) -> None:
    pipeline, lanes, _, _ = world
    body = to_json(uplink_event(dev_eui=EUI, data=FRAME, f_cnt=2))
    first: list[bool] = []
    copy: list[bool] = []
    send(pipeline, body, first)
    send(pipeline, body, copy)
    lanes.finish(ok=False)
    assert first == [False] and copy == [False]
    again: list[bool] = []
    send(pipeline, body, again)
    assert len(lanes.held) == 1 and again == []


def test_a_path_that_raised_is_not_remembered_as_done(world: tuple[Pipeline, Lanes, State, Cache]) -> None:
    pipeline, lanes, _, _ = world
    body = to_json(uplink_event(dev_eui=EUI, data=FRAME, f_cnt=3))
    lanes.crash = True
    crashed: list[bool] = []
    send(pipeline, body, crashed)
    assert crashed == [False]
    lanes.crash = False
    resent: list[bool] = []
    send(pipeline, body, resent)
    assert len(lanes.held) == 1, "the resend was dropped as a copy of a message that never went out"


def test_unknown_devices_and_device_events_are_not_deduplicated(world: tuple[Pipeline, Lanes, State, Cache]) -> None:
    pipeline, _, state, cache = world
    cache.snapshot.known = False
    body = to_json(uplink_event(dev_eui=EUI, data=FRAME, f_cnt=4))
    acks: list[bool] = []
    send(pipeline, body, acks)
    send(pipeline, body, acks)
    assert state.unknown == [EUI, EUI] and acks == [True, True]
    cache.snapshot.known = True
    for _ in range(2):
        pipeline.device_event(EUI, "status", {}, {}, Finalizer(acks.append))
    assert state.events == ["status", "status"]
    assert pipeline.dedup.in_progress == 0
