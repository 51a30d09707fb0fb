"""The requests in flight to one consumer: at most ``options.concurrency``, live sends first.

A lane's live workers and the retry worker's backlog sends share one consumer's capacity. A plain
semaphore is first come, first served: a retry pass that queued a few hundred backlog requests put
every live message behind all of them, which is strict order by accident. Here a free slot goes to a
waiting live send first and to the backlog only when no live send waits, so with "fresh-first" live
messages reach a recovering consumer at once and the backlog drains with the capacity they leave. (A
backlog send that cannot get a slot before its claim's lease is at risk is not started: the retry
worker gives it back for the next pass.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator


class Slots:
    def __init__(self, n: int) -> None:
        self.size = max(1, n)
        self._free = self.size
        self._live: deque[asyncio.Future[None]] = deque()
        self._backlog: deque[asyncio.Future[None]] = deque()

    @property
    def in_use(self) -> int:
        return self.size - self._free

    @contextlib.asynccontextmanager
    async def live(self) -> AsyncIterator[None]:
        await self._acquire(self._live)
        try:
            yield
        finally:
            self._release()

    @contextlib.asynccontextmanager
    async def backlog(self) -> AsyncIterator[None]:
        await self._acquire(self._backlog)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, queue: deque[asyncio.Future[None]]) -> None:
        ahead = self._live if queue is self._live else (self._live or self._backlog)
        if self._free > 0 and not ahead:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()          # a slot was handed over just as we were cancelled: pass it on
            elif waiter in queue:
                queue.remove(waiter)
            raise

    def _release(self) -> None:
        """Hand the slot straight to the next waiter (live first), or make it free."""
        for queue in (self._live, self._backlog):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self._free += 1
