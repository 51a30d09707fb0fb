"""Retry policy and circuit breaker, as tables."""

from __future__ import annotations

import pytest

from distributor.delivery.policy import CircuitBreaker, RetryPolicy, bounded_option, delivery_order


@pytest.mark.parametrize(("attempts", "rand", "retry_after", "expected"), [
    (1, 0.0, None, 0.5), (1, 1.0, None, 1.0), (3, 0.0, None, 2.0), (3, 1.0, None, 4.0),
    (20, 1.0, None, 300.0), (20, 0.0, None, 150.0), (1, 0.0, 7.0, 7.0), (3, 1.0, 2.0, 4.0),
])
def test_backoff_grows_with_jitter_and_honours_retry_after(attempts: int, rand: float, retry_after: float | None,
                                                           expected: float) -> None:
    assert RetryPolicy(base_s=1, max_backoff_s=300).backoff(attempts, retry_after, rand) == expected


@pytest.mark.parametrize(("attempts", "age", "gives_up"), [(49, 10, False), (50, 10, True), (1, 3 * 86400, True)])
def test_exhausted(attempts: int, age: float, gives_up: bool) -> None:
    assert (RetryPolicy().exhausted(attempts, age) is not None) is gives_up


def test_consumer_options_override_defaults() -> None:
    p = RetryPolicy.for_consumer(RetryPolicy(), {"max_attempts": 3, "max_age_s": 60})
    assert (p.max_attempts, p.max_age_s, p.base_s) == (3, 60.0, 1.0)


def test_breaker_opens_probes_and_closes() -> None:
    b = CircuitBreaker(threshold=3, cooldown_s=10)
    for t in range(2):
        b.failure(t)
    assert b.allows_live()
    b.failure(2)
    assert b.state == "open" and not b.allows_live()
    assert not b.may_probe(5)
    assert b.may_probe(12) and b.state == "half-open"
    b.failure(12)  # the probe failed: open again, longer cooldown
    assert b.state == "open" and b.cooldown_s == 20
    assert not b.may_probe(25)
    assert b.may_probe(33)
    b.success()
    assert b.state == "closed" and b.allows_live() and b.cooldown_s == 10


def test_the_cooldown_cap_is_a_setting_with_a_sane_default() -> None:
    b = CircuitBreaker(threshold=1, cooldown_s=1)
    b.failure(0)
    for t in range(1, 20):     # every probe fails: the wait doubles, up to 60 s (it was a hard-coded 300 s)
        assert b.may_probe(b.opened_at + b.wait_s())
        b.failure(t)
    assert b.cooldown_s == 60
    assert CircuitBreaker(cooldown_s=1, max_cooldown_s=7).cooldown_s == 1
    assert CircuitBreaker(cooldown_s=30, max_cooldown_s=7).cooldown_s == 7


@pytest.mark.parametrize(("cooldown", "backlog", "wait"), [(40.0, False, 40.0), (40.0, True, 5.0), (2.0, True, 2.0)])
def test_a_consumer_with_a_backlog_is_probed_sooner(cooldown: float, backlog: bool, wait: float) -> None:
    b = CircuitBreaker(threshold=1, cooldown_s=cooldown, max_cooldown_s=60, backlog_probe_s=5)
    b.failure(100)
    assert b.wait_s(backlog) == wait
    assert not b.may_probe(100 + wait - 0.01, backlog)
    assert b.may_probe(100 + wait, backlog) and b.state == "half-open"


@pytest.mark.parametrize(("options", "expected"), [
    ({}, "fresh-first"), ({"order": "strict"}, "strict"), ({"order": "fresh-first"}, "fresh-first"),
    ({"order": "STRICT"}, "fresh-first"), ({"order": ["strict"]}, "fresh-first"),
])
def test_delivery_order(options: dict[str, object], expected: str) -> None:
    assert delivery_order(options) == expected


@pytest.mark.parametrize(("value", "expected"), [
    (None, 8.0), (4, 4.0), ("4", 4.0), (2.5, 2.5), (0, 1.0), (-3, 1.0), (10**9, 64.0), ("x", 8.0), ([1], 8.0),
    ({"a": 1}, 8.0), (True, 8.0), (float("nan"), 8.0), (float("inf"), 64.0), ("1e999", 64.0),
])
def test_numeric_options_are_bounded_and_never_raise(value: object, expected: float) -> None:
    options = {} if value is None else {"concurrency": value}
    assert bounded_option(options, "concurrency", 8, 1, 64) == expected


def test_odd_retry_options_fall_back_to_the_defaults() -> None:
    """They used to raise in the dispatcher's sync, which then opened no lane for any consumer."""
    p = RetryPolicy.for_consumer(RetryPolicy(), {"max_attempts": "many", "max_age_s": None, "retry_base_s": -1,
                                                 "retry_max_backoff_s": [300]})
    assert (p.max_attempts, p.max_age_s, p.base_s, p.max_backoff_s) == (50, 3 * 86400, 0.001, 300.0)
