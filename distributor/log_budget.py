"""A bound on log lines per key, so one tenant's broken decoder cannot flood the operator's log.

Every decode failure is logged with its message id (DESIGN.md), but a decoder that fails for every
uplink (a suspended one, a queue that is full, a frame format it does not know) at thousands of
uplinks a second would drown everything else. ``LogBudget.allow(key)`` lets ``per_window`` lines
through per key and window; the rest are counted, and the first line of the next window says how
many were left out. The message itself still carries the error (``decoder.status = "error"``) and
``iotd_decoded_total{status="error"}`` counts every one.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

MAX_KEYS = 10_000     # distinct keys remembered; beyond, the oldest window is forgotten


class LogBudget:
    def __init__(self, per_window: int = 10, window_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_window = per_window
        self.window_s = window_s
        self._clock = clock
        self._windows: OrderedDict[Hashable, list[float]] = OrderedDict()   # key -> [start, lines, left out]

    def allow(self, key: Hashable) -> tuple[bool, int]:
        """(whether to log this line, how many lines of the previous window were left out)."""
        now = self._clock()
        window = self._windows.get(key)
        if window is None or now - window[0] >= self.window_s:
            left_out = int(window[2]) if window is not None else 0
            if window is None and len(self._windows) >= MAX_KEYS:
                self._windows.popitem(last=False)   # O(1); a plain dict's first key is found past every deleted one
            self._windows[key] = [now, 1, 0]
            self._windows.move_to_end(key)          # kept in the order the windows opened
            return True, left_out
        if window[1] < self.per_window:
            window[1] += 1
            return True, 0
        window[2] += 1
        return False, 0
