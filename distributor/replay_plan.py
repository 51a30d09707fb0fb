"""The pure parts of a replay job (``distributor.replay``): which stored messages it sends, how far it
reads at a time, and how fast it may go.

* ``Window``: a job reads an organization's stored messages a time window at a time (a BRIN index on
  ``received_at`` finds the window's blocks), in (received_at, id) order, at most ``rows`` at a time.
  The window grows while it holds few messages and shrinks while it holds many, so a quiet night costs
  a few queries and a busy hour never sorts more than a few batches at once.
* ``Pacer``: the job's rate limit (messages per second), a token bucket without a task and with a small
  burst.
* ``wanted``: whether a stored message goes to the job's consumer: a replay sends what the consumer's
  subscriptions match now; a backfill sends what its own subscription matches and no other subscription
  of the consumer delivered live already (one that was live when the message arrived).
* ``FirstCopies``: a message stored twice (redelivered after a crash lost its acknowledgement) goes
  out once when its copies are near each other, as they are.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from registry.cache import Snapshot
from registry.records import Device, Subscription

MIN_WINDOW = timedelta(seconds=1)
MAX_WINDOW = timedelta(days=7)
FIRST_WINDOW = timedelta(hours=1)
RECENT_IDS = 10_000


@dataclass(slots=True)
class Window:
    rows: int = 1000                  # at most this many messages per read
    width: timedelta = FIRST_WINDOW

    def end(self, position: datetime, limit: datetime) -> datetime:
        """Where the read starting at ``position`` stops (``limit``: the job's end, or now minus the settle time)."""
        return min(position + self.width, limit)

    def read(self, got: int) -> bool:
        """After a read that answered ``got`` rows: whether the window was full (the job goes on inside it);
        adapts the width for the next one."""
        if got >= self.rows:
            self.width = max(MIN_WINDOW, self.width / 2)
            return True
        if got < self.rows // 4:
            self.width = min(MAX_WINDOW, self.width * 2)
        return False


BURST_S = 0.05     # time left unused earns at most this much of a burst: a job's work stays spread out


class Pacer:
    """At most ``rate`` messages per second on average; time left unused earns at most ``BURST_S`` of a burst,
    so a job never takes the event loop (and live messages' latency) for a second's worth of work at once."""

    def __init__(self, rate: float) -> None:
        self.rate = max(1.0, rate)
        self._paid_until = 0.0        # monotonic time by which what was booked so far is paid for

    def delay(self, n: int, now: float) -> float:
        """Seconds to wait before sending ``n`` messages at ``now`` (monotonic); books them."""
        start = max(self._paid_until, now - BURST_S)
        self._paid_until = start + n / self.rate
        return max(0.0, start - now)


def wanted(snapshot: Snapshot, consumer_id: str, device: Device, received_at: float,
           subscription: Subscription | None) -> bool:
    """Whether a stored message of ``device`` goes to the consumer (``subscription``: a backfill's own)."""
    if subscription is None:
        return any(c.id == consumer_id for c in snapshot.consumers_for(device))
    if not subscription.matches(device):
        return False
    return not any(s.consumer_id == consumer_id and s.id != subscription.id and s.live_since <= received_at
                   and s.matches(device) for s in snapshot.subscriptions)


class FirstCopies:
    """Message ids sent lately, so a message stored twice goes out once."""

    def __init__(self, size: int = RECENT_IDS) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def first(self, message_id: str) -> bool:
        if message_id in self._seen:
            return False
        self._seen[message_id] = None
        if len(self._seen) > self._size:
            self._seen.popitem(last=False)
        return True
