"""Retry policy and circuit breaker, as tables."""

from __future__ import annotations

import pytest

from distributor.delivery.policy import CircuitBreaker, RetryPolicy


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
