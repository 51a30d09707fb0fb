"""Bounded intake without starving the protocol: the arithmetic, apart from any socket.

The source keeps reading its connection (so PINGRESPs, the broker's DISCONNECT and a closed socket are
seen at once) and passes each PUBLISH to the gate. At most ``cap`` messages are in progress; one that
arrives beyond that is held, in arrival order, and started when a message in progress finishes. The
client announces ``cap`` as its MQTT v5 Receive Maximum, so a broker that honours it makes the gate hold
something only right after a reconnect, while messages of the lost connection are still in progress.
Mosquitto before 2.0.13 does not honour it (measured: each PUBACK releases another whole window), so the
hold has its own bound: at ``hold_limit`` held the gate reports ``full`` and the source stops reading
the socket (the fallback, with the link kept alive by TCP and our own PINGREQs) until the hold is down to
half (``drained``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class IntakeGate(Generic[T]):
    __slots__ = ("cap", "held", "hold_limit", "in_progress")

    def __init__(self, cap: int, hold_limit: int) -> None:
        if cap < 1 or hold_limit < 1:
            raise ValueError("cap and hold_limit must be at least 1")
        self.cap = cap
        self.hold_limit = hold_limit
        self.in_progress = 0
        self.held: deque[T] = deque()

    def arrive(self, item: T) -> bool:
        """True: start ``item`` now (it is counted in progress); False: it is held."""
        if self.in_progress < self.cap and not self.held:
            self.in_progress += 1
            return True
        self.held.append(item)
        return False

    def finish(self) -> None:
        self.in_progress -= 1

    def next(self) -> T | None:
        """A held item to start now (counted in progress), or None when none is held or no slot is free."""
        if self.held and self.in_progress < self.cap:
            self.in_progress += 1
            return self.held.popleft()
        return None

    def forget(self, keep: Callable[[T], bool]) -> int:
        """Drop the held items ``keep`` rejects (they came on a connection that is gone); returns how many."""
        kept = [item for item in self.held if keep(item)]
        dropped = len(self.held) - len(kept)
        self.held = deque(kept)
        return dropped

    @property
    def full(self) -> bool:
        return len(self.held) >= self.hold_limit

    @property
    def drained(self) -> bool:
        return len(self.held) <= self.hold_limit // 2

    @property
    def idle(self) -> bool:
        return self.in_progress == 0
