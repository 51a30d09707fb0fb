"""Acknowledgements that follow the message.

A source attaches a ``Finalizer`` to each message and keeps the callback. Every piece of work
the message fans out to (a consumer delivery, a durable spill) holds the finalizer and
releases it with its outcome; when the last hold is released the callback fires exactly once
with ``True`` only if every piece succeeded. The source then acks the broker or answers 2xx.

Observers may also be told the outcome when it fires (``observe``): the de-duplication table
uses it to release the copies of a message that arrived while it was in progress. It is a slot,
not a task or a future: this is the hot path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Finalizer:
    __slots__ = ("_callback", "_failed", "_observer", "_pending")

    def __init__(self, callback: Callable[[bool], None]) -> None:
        self._callback: Callable[[bool], None] | None = callback
        self._pending = 1  # the pipeline's own hold, released when routing is finished
        self._failed = False
        self._observer: Callable[[bool], None] | None = None

    def hold(self, n: int = 1) -> None:
        if self._callback is None:
            raise RuntimeError("finalizer already fired")
        self._pending += n

    def release(self, ok: bool = True) -> None:
        if not ok:
            self._failed = True
        self._pending -= 1
        if self._pending == 0 and self._callback is not None:
            callback, self._callback = self._callback, None
            outcome = not self._failed
            try:
                callback(outcome)
            finally:
                observer = self._observer
                if observer is not None:
                    self._observer = None
                    observer(outcome)

    def observe(self, observer: Callable[[bool], None]) -> None:
        """Also call ``observer(ok)`` once, right after the callback, when the finalizer fires."""
        if self._callback is None:
            raise RuntimeError("finalizer already fired")
        earlier = self._observer
        if earlier is None:
            self._observer = observer
        else:
            def both(ok: bool) -> None:
                earlier(ok)
                observer(ok)

            self._observer = both

    @property
    def fired(self) -> bool:
        return self._callback is None


def noop_finalizer() -> Finalizer:
    return Finalizer(lambda ok: None)


def finalizer_for(done: asyncio.Future[bool]) -> Finalizer:
    """A finalizer that resolves ``done`` with the outcome: what a source awaits before acking."""

    def fire(ok: bool) -> None:
        if not done.done():
            done.set_result(ok)

    return Finalizer(fire)
