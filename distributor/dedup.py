"""Remembers recently seen keys for a window, to drop duplicates (ChirpStack dedup id, or dev_eui+fCnt+fPort)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable


class SeenWindow:
    """Bounded in time and size; ``seen(key)`` records the key and says whether it was already there."""

    def __init__(self, window_s: float = 300.0, max_keys: int = 500_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._window_s = window_s
        self._max_keys = max_keys
        self._clock = clock
        self._keys: OrderedDict[Hashable, float] = OrderedDict()

    def seen(self, key: Hashable) -> bool:
        now = self._clock()
        self._expire(now)
        if key in self._keys:
            return True
        self._keys[key] = now
        if len(self._keys) > self._max_keys:
            self._keys.popitem(last=False)
        return False

    def _expire(self, now: float) -> None:
        keys = self._keys
        limit = now - self._window_s
        while keys:
            first_key = next(iter(keys))
            if keys[first_key] >= limit:
                break
            del keys[first_key]

    def __len__(self) -> int:
        return len(self._keys)
