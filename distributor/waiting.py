"""Waiting, at shutdown, until a piece of work has drained: one poll loop for every drain."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

POLL_S = 0.01


async def until(done: Callable[[], bool], deadline: float) -> bool:
    """Poll ``done`` until it holds or the loop's clock reaches ``deadline``; whether it held."""
    loop = asyncio.get_running_loop()
    while not done() and loop.time() < deadline:
        await asyncio.sleep(POLL_S)
    return done()


def deadline_in(timeout_s: float) -> float:
    """The loop-clock time ``timeout_s`` from now."""
    return asyncio.get_running_loop().time() + timeout_s
