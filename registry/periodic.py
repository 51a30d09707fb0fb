"""A background job that runs every few seconds and survives its own failures (logged, retried)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


async def run_every(interval_s: float, job: Callable[[], Awaitable[None]], log: Any, what: str) -> None:
    """Await ``job`` every ``interval_s`` until cancelled; a failure is logged and the next turn retries."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await job()
        except Exception as exc:  # a database outage or a bug: keep the loop (and the data) for the next turn
            log.warning(f"{what} failed; will retry", error=str(exc) or type(exc).__name__,
                        error_type=type(exc).__name__)
