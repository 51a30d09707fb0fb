"""Bounded in-memory tables stay O(1) a step when full (issue 16): a plain dict used as a queue found its
oldest key by walking past every key deleted before it, so each step of a full table cost O(size).

Each test compares, in one process and best of three, the cost of steps on a full table with the same steps
on a nearly empty one: the machine's speed cancels out, and the old code was 20-100 times slower here."""

from __future__ import annotations

import time
from collections.abc import Callable

from distributor.auth_throttle import AuthThrottle
from distributor.js_codecs import DeviceStatuses
from distributor.log_budget import LogBudget

STEPS = 3_000


def cost(step: Callable[[int], None], offset: int) -> float:
    best = float("inf")
    for attempt in range(3):
        began = time.perf_counter()
        for i in range(STEPS):
            step(offset + attempt * STEPS + i)
        best = min(best, time.perf_counter() - began)
    return best


def full_vs_empty(make: Callable[[], Callable[[int], None]], fill: int) -> tuple[float, float]:
    empty = cost(make(), 0)
    full = make()
    for i in range(fill):             # filled, then turned over so deleted keys pile up in front
        full(10_000_000 + i)
    return cost(full, 20_000_000), empty


def test_the_auth_throttle_takes_a_new_address_in_constant_time_when_full() -> None:
    def make() -> Callable[[int], None]:
        throttle = AuthThrottle(5, clock=lambda: 0.0, max_addresses=50_000)
        return lambda i: throttle.failed(f"2001:db8::{i:x}", "api_key", "iotd_x")

    full, empty = full_vs_empty(make, 120_000)
    assert full < 5 * empty


def test_the_log_budget_takes_a_new_key_in_constant_time_when_full() -> None:
    def make() -> Callable[[int], None]:
        budget = LogBudget()
        return lambda i: budget.allow(("org", i))[0] or None

    full, empty = full_vs_empty(make, 40_000)
    assert full < 5 * empty


def test_device_statuses_take_a_new_device_in_constant_time_when_full() -> None:
    def make() -> Callable[[int], None]:
        statuses = DeviceStatuses(limit=50_000)
        return lambda i: statuses.note(f"device-{i}", 80.0, 7)

    full, empty = full_vs_empty(make, 120_000)
    assert full < 5 * empty
