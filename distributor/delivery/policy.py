"""Retry policy and the circuit breaker: pure logic, tested with tables.

Backoff is exponential with "equal jitter" (half fixed, half random), never shorter than what
the consumer asked for with Retry-After. A consumer whose policy is used up (attempts or age)
gets its message dead-lettered.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any


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
            base_s=float(options.get("retry_base_s", defaults.base_s)),
            max_backoff_s=float(options.get("retry_max_backoff_s", defaults.max_backoff_s)),
            max_attempts=int(options.get("max_attempts", defaults.max_attempts)),
            max_age_s=float(options.get("max_age_s", defaults.max_age_s)),
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


CLOSED, HALF_OPEN, OPEN = "closed", "half-open", "open"
CIRCUIT_VALUES = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures; after a cooldown one probe may pass (half-open)."""

    def __init__(self, threshold: int = 5, cooldown_s: float = 10.0, max_cooldown_s: float = 300.0) -> None:
        self.threshold = threshold
        self.base_cooldown_s = cooldown_s
        self.max_cooldown_s = max_cooldown_s
        self.cooldown_s = cooldown_s
        self.state = CLOSED
        self.failures = 0
        self.opened_at = 0.0

    def allows_live(self) -> bool:
        """Live traffic flows only when closed; otherwise it goes to the retry store."""
        return self.state == CLOSED

    def may_probe(self, now: float) -> bool:
        if self.state == OPEN and now - self.opened_at >= self.cooldown_s:
            self.state = HALF_OPEN
            return True
        return self.state != OPEN

    def success(self) -> None:
        self.state = CLOSED
        self.failures = 0
        self.cooldown_s = self.base_cooldown_s

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
