"""Retry policy and the circuit breaker: pure logic, tested with tables.

Backoff is exponential with "equal jitter" (half fixed, half random), never shorter than what
the consumer asked for with Retry-After. A consumer whose policy is used up (attempts or age)
gets its message dead-lettered.

Probing an open circuit (the rule, issue 14): after the n-th failed probe in a row the circuit waits
``min(max_cooldown_s, cooldown_s * 2**n)`` before the next one; while the consumer has pending
deliveries it waits at most ``backlog_probe_s`` instead, because every second a recovered consumer
is not probed is a second added to every pending message, and a probe costs one request. A
successful probe closes the circuit and resets the wait to ``cooldown_s``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any


def bounded_option(options: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    """A numeric consumer option, clamped to [low, high]; the default when it is missing or not a number.

    Never raises: ``options`` is a tenant's free-form JSON, and one consumer's odd value must not stop
    the dispatcher from opening the lanes of every other consumer."""
    value = options.get(key, default)
    if isinstance(value, bool):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return default
    if number != number:            # NaN
        return default
    return min(high, max(low, number))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_s: float = 1.0
    max_backoff_s: float = 300.0
    max_attempts: int = 50
    max_age_s: float = 3 * 24 * 3600

    @classmethod
    def for_consumer(cls, defaults: RetryPolicy, options: dict[str, Any]) -> RetryPolicy:
        """Per-consumer overrides from ``consumer.options`` (max_attempts, max_age_s, ...)."""
        return cls(
            base_s=bounded_option(options, "retry_base_s", defaults.base_s, 0.001, 86_400),
            max_backoff_s=bounded_option(options, "retry_max_backoff_s", defaults.max_backoff_s, 0.001, 7 * 86_400),
            max_attempts=int(bounded_option(options, "max_attempts", defaults.max_attempts, 1, 1_000_000)),
            max_age_s=bounded_option(options, "max_age_s", defaults.max_age_s, 1, 365 * 86_400),
        )

    def backoff(self, attempts: int, retry_after: float | None = None, rand: float | None = None) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt."""
        r = random.random() if rand is None else rand
        ceiling: float = min(self.max_backoff_s, self.base_s * 2.0 ** max(0, attempts - 1))
        delay = ceiling / 2 + r * ceiling / 2
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    def exhausted(self, attempts: int, age_s: float) -> str | None:
        """Why no more attempts are allowed, or None."""
        if attempts >= self.max_attempts:
            return f"gave up after {attempts} attempts"
        if age_s >= self.max_age_s:
            return f"gave up after {age_s:.0f} s (max age {self.max_age_s:.0f} s)"
        return None


FRESH_FIRST, STRICT = "fresh-first", "strict"
ORDERS = (FRESH_FIRST, STRICT)


def delivery_order(options: dict[str, Any]) -> str:
    """``options.order``: "fresh-first" (default) or "strict"; anything else (the API refuses it) is the default."""
    order = options.get("order", FRESH_FIRST)
    return order if order in ORDERS else FRESH_FIRST


CLOSED, HALF_OPEN, OPEN = "closed", "half-open", "open"
CIRCUIT_VALUES = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures; after a cooldown one probe may pass (half-open)."""

    def __init__(self, threshold: int = 5, cooldown_s: float = 10.0, max_cooldown_s: float = 60.0,
                 backlog_probe_s: float = 5.0) -> None:
        self.threshold = threshold
        self.base_cooldown_s = cooldown_s
        self.max_cooldown_s = max_cooldown_s
        self.backlog_probe_s = backlog_probe_s
        self.cooldown_s = min(cooldown_s, max_cooldown_s)
        self.state = CLOSED
        self.failures = 0
        self.opened_at = 0.0

    def allows_live(self) -> bool:
        """Live traffic flows only when closed; otherwise it goes to the retry store."""
        return self.state == CLOSED

    def wait_s(self, backlog: bool = False) -> float:
        """How long an open circuit waits before its next probe."""
        return min(self.cooldown_s, self.backlog_probe_s) if backlog else self.cooldown_s

    def may_probe(self, now: float, backlog: bool = False) -> bool:
        """Whether the retry worker may send now (an open circuit whose wait is over turns half-open)."""
        if self.state == OPEN and now - self.opened_at >= self.wait_s(backlog):
            self.state = HALF_OPEN
            return True
        return self.state != OPEN

    def success(self) -> None:
        self.state = CLOSED
        self.failures = 0
        self.cooldown_s = min(self.base_cooldown_s, self.max_cooldown_s)

    def failure(self, now: float) -> None:
        self.failures += 1
        if self.state == HALF_OPEN:
            self.cooldown_s = min(self.max_cooldown_s, self.cooldown_s * 2)
            self._open(now)
        elif self.state == CLOSED and self.failures >= self.threshold:
            self._open(now)

    def _open(self, now: float) -> None:
        self.state = OPEN
        self.opened_at = now
