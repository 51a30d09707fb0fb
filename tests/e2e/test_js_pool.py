"""The JavaScript worker pool with real worker processes: hard deadlines, replacement of killed and lost
workers, fairness between organizations, per-organization queues, suspension, and shutdown."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from distributor.js_pool import JsPool
from registry.records import JsDecoderRecord

GOOD = "function decodeUplink(input) { return { data: { temperature: input.bytes[0] } }; }"
LOOPING = "function decodeUplink(input) { if (input.bytes[0] === 1) { while (true) {} } return { data: { ok: 1 } }; }"
REGEX = "function decodeUplink(input) { return { data: { m: /^(a+)+$/.test('a'.repeat(40) + 'b') } }; }"
# A native loop over four billion array holes: QuickJS's interrupt handler never runs inside it.
UNINTERRUPTIBLE = ("function decodeUplink(input) { if (input.bytes[0] === 1) return { data: { n: new Array(4000000000)"
                   ".join('').length } }; return { data: { ok: 1 } }; }")


def record(name: str, source: str, timeout_ms: int = 100, organization: str | None = "org-a") -> JsDecoderRecord:
    return JsDecoderRecord(name, organization, "ttn", source, timeout_ms, 1)


class Calls:
    """Submits uplinks and records each answer with the time it took."""

    def __init__(self, pool: JsPool) -> None:
        self.pool = pool
        self.answers: dict[str, tuple[float, dict[str, Any]]] = {}

    def submit(self, tag: str, organization: str, rec: JsDecoderRecord, first_byte: int = 0) -> None:
        started = time.monotonic()
        body = {"op": "decode", "c": [rec.id, rec.version, None], "p": base64.b64encode(bytes([first_byte])).decode(),
                "f": 1, "v": {}}

        def done(answer: dict[str, Any]) -> None:
            self.answers[tag] = (time.monotonic() - started, answer)

        self.pool.submit(organization, rec, None, body, done)

    async def wait(self, *tags: str, timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while not all(t in self.answers for t in tags):
                await asyncio.sleep(0.01)

    def errors(self, tag: str) -> list[str]:
        return list(self.answers[tag][1]["e"])


@pytest.fixture
async def pool() -> AsyncIterator[JsPool]:
    p = JsPool(2, 0, 50, suspend_after=3, suspend_s=0.5, grace_s=0.2, load_s=1.0)
    await p.start()
    await p.warm()
    yield p
    await p.close()


async def test_a_worker_that_misses_its_hard_deadline_is_killed_and_replaced(pool: JsPool) -> None:
    calls = Calls(pool)
    stuck = record("stuck", UNINTERRUPTIBLE, timeout_ms=50)
    calls.submit("warm", "org-a", stuck, 0)  # loads the codec: the next budget has no load time
    await calls.wait("warm")
    pids = set(pool.worker_pids())
    calls.submit("stuck", "org-a", stuck, 1)
    calls.submit("behind", "org-a", stuck, 0)  # written to the same worker, behind it
    await calls.wait("stuck", "behind")
    took, _ = calls.answers["stuck"]
    assert calls.errors("stuck") == ["timed out after 50 ms: the worker did not answer within 0.2 s and was replaced"]
    assert 0.25 <= took < 2.0, took
    assert calls.answers["behind"][1]["d"] == {"ok": 1}  # requeued and decoded by a fresh worker
    assert pool.restarts == 1 and pool.counters["stuck"].timeouts == 1
    async with asyncio.timeout(10):
        while len(pool.worker_pids()) < 2:
            await asyncio.sleep(0.01)
    assert len(pids - set(pool.worker_pids())) == 1


async def test_a_catastrophic_regex_stops_at_its_limit_and_the_context_is_rebuilt(pool: JsPool) -> None:
    calls = Calls(pool)
    regex = record("regex", REGEX, timeout_ms=100)
    calls.submit("regex", "org-a", regex)
    await calls.wait("regex")
    took, answer = calls.answers["regex"]
    assert answer["e"] == ["timed out after 100 ms"] and answer["x"] == "timeout"
    assert took < 2.5  # the engine stops it (load included), no kill needed
    calls.submit("again", "org-a", regex)
    await calls.wait("again")
    assert calls.answers["again"][1]["e"] == ["timed out after 100 ms"]
    assert pool.restarts == 0 and pool.counters["regex"].contexts_built == 2  # the load, then a fresh context


async def test_another_organization_never_waits_behind_a_looping_decoder(pool: JsPool) -> None:
    calls = Calls(pool)
    loop, good = record("loop", LOOPING, timeout_ms=300), record("good", GOOD, organization="org-b")
    for i in range(6):
        calls.submit(f"a{i}", "org-a", loop, 1)
    await asyncio.sleep(0.05)
    for i in range(20):
        calls.submit(f"b{i}", "org-b", good, i)
        await asyncio.sleep(0.01)
    await calls.wait(*(f"b{i}" for i in range(20)))
    worst = max(calls.answers[f"b{i}"][0] for i in range(20))
    assert worst < 0.25, worst  # org A holds at most one of the two workers
    assert not all(f"a{i}" in calls.answers for i in range(6))  # while A's loops were still running


async def test_a_full_organization_queue_fails_at_once(pool: JsPool) -> None:
    calls = Calls(pool)
    loop = record("queue-loop", LOOPING, timeout_ms=300)
    for i in range(80):
        calls.submit(f"q{i}", "org-q", loop, 1)
    refused = [t for t, (_, a) in calls.answers.items() if "already waiting" in " ".join(a["e"])]
    assert len(refused) >= 20 and all(calls.answers[t][0] < 0.05 for t in refused)
    await pool.close()  # the rest: answered with an error at once (they go out undecoded)
    assert len(calls.answers) == 80


async def test_a_decoder_that_keeps_timing_out_is_suspended_and_reported(pool: JsPool) -> None:
    calls = Calls(pool)
    loop = record("suspend-me", LOOPING, timeout_ms=20)
    with capture_logs() as logs:
        for i in range(3):
            calls.submit(f"t{i}", "org-s", loop, 1)
            await calls.wait(f"t{i}")
        calls.submit("blocked", "org-s", loop, 0)
        calls.submit("other-org", "org-t", loop, 0)  # suspension is per organization
        await calls.wait("blocked", "other-org")
    assert calls.errors("blocked")[0].startswith("decoder suspended after 3 timeouts in a row; retrying at ")
    assert calls.answers["blocked"][0] < 0.05 and calls.answers["other-org"][1]["d"] == {"ok": 1}
    suspended = [e for e in logs if e["event"].startswith("JavaScript decoder suspended")]
    assert len(suspended) == 1 and suspended[0]["decoder"] == "suspend-me" and suspended[0]["log_level"] == "error"
    assert pool.suspended() == {"suspend-me"} and pool.counters["suspend-me"].suspensions == 1
    await asyncio.sleep(0.55)
    calls.submit("probation", "org-s", loop, 1)  # the first timeout after a suspension: twice as long
    await calls.wait("probation")
    calls.submit("blocked-again", "org-s", loop, 0)
    await calls.wait("blocked-again")
    assert "suspended after 4 timeouts" in calls.errors("blocked-again")[0]
    assert pool.counters["suspend-me"].suspensions == 2
    await asyncio.sleep(1.05)
    calls.submit("success", "org-s", loop, 0)  # an answer in time resets it
    calls.submit("one-more", "org-s", loop, 1)
    calls.submit("still-fine", "org-s", loop, 0)
    await calls.wait("success", "one-more", "still-fine")
    assert calls.answers["still-fine"][1]["d"] == {"ok": 1} and pool.suspended() == set()


async def test_an_uplink_in_two_dying_workers_fails_instead_of_looping(pool: JsPool) -> None:
    calls = Calls(pool)
    slow = record("slow", UNINTERRUPTIBLE, timeout_ms=5000)
    calls.submit("doomed", "org-d", slow, 1)
    for _ in range(2):
        await asyncio.sleep(0.3)
        busy = [w for w in pool._workers if w is not None and w.inflight]
        assert len(busy) == 1 and busy[0].pid is not None
        os.kill(busy[0].pid, signal.SIGKILL)
        async with asyncio.timeout(10):
            while not any(w is not None and w.inflight for w in pool._workers) and "doomed" not in calls.answers:
                await asyncio.sleep(0.01)
    await calls.wait("doomed")
    assert calls.errors("doomed") == ["the JavaScript worker decoding this uplink was lost twice; delivered undecoded"]
    assert pool.restarts == 2


async def test_while_its_killed_worker_restarts_an_organization_cannot_take_another_ones(pool: JsPool) -> None:
    calls = Calls(pool)
    stuck, loop = record("stuck-2", UNINTERRUPTIBLE, timeout_ms=50), record("loop-2", LOOPING, timeout_ms=300)
    good = record("good-2", GOOD, organization="org-b")
    calls.submit("warm", "org-a", stuck, 0)
    await calls.wait("warm")
    calls.submit("stuck", "org-a", stuck, 1)
    await calls.wait("stuck")  # its worker was killed; the replacement is starting
    calls.submit("a-loop", "org-a", loop, 1)  # would hold the only ready worker for 300 ms
    calls.submit("b", "org-b", good, 5)
    await calls.wait("b", "a-loop")
    assert calls.answers["b"][0] < 0.15, calls.answers["b"][0]
    assert calls.answers["a-loop"][1]["e"] == ["timed out after 300 ms"]
