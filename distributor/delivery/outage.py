"""One log line when a repeated operation starts failing and one when it works again.

A database outage makes the retry worker's passes and the spill store's writes fail on every
poll; a line per attempt floods the log (and buries the one line that says when it began). An
``Outage`` logs the first failure, counts the rest, and logs the recovery with how long it lasted.
"""

from __future__ import annotations

import time
from typing import Any


class Outage:
    __slots__ = ("_failures", "_log", "_recovered", "_since", "_started")

    def __init__(self, log: Any, started: str, recovered: str) -> None:
        self._log = log
        self._started = started
        self._recovered = recovered
        self._since: float | None = None
        self._failures = 0

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def failed(self, error: str, **fields: Any) -> bool:
        """Count a failure; logs (and returns True) only for the first of an outage."""
        self._failures += 1
        if self._since is not None:
            return False
        self._since = time.monotonic()
        self._log.error(self._started, error=error, **fields)
        return True

    def ok(self) -> None:
        """A success: ends the outage, if there was one, with one line saying how long it lasted."""
        if self._since is None:
            return
        lasted = time.monotonic() - self._since
        self._log.warning(self._recovered, lasted_s=round(lasted, 3), failed_attempts=self._failures)
        self._since = None
        self._failures = 0
