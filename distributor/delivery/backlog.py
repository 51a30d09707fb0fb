"""How many deliveries wait in ``pending_deliveries`` per consumer, kept current without polling the table.

The spill store reports the rows it inserted (after the commit), the retry worker the rows it
deleted or moved to dead letters; ``iotd_pending_deliveries`` follows each change at once. A
periodic resynchronisation (the retry worker's backlog query) sets the counts to the table's, so
rows written or removed by other instances or by the API (dead-letter replay) are counted too, at
most one resync interval late. Changes reported while that query runs are added on top of its
result, so a change racing the query may count twice until the next resync.

Lanes use the count to keep strict order (new messages go behind an existing backlog) and the
retry worker to probe a failing consumer sooner and to skip consumers with nothing pending.
"""

from __future__ import annotations

from typing import Any


class Backlog:
    def __init__(self, gauge: Any | None = None) -> None:
        self._gauge = gauge                       # a labelled prometheus Gauge (consumer), or None
        self._counts: dict[str, int] = {}
        self._children: dict[str, Any] = {}
        self._racing: dict[str, int] | None = None  # changes seen while a resync query runs

    def count(self, consumer_id: str) -> int:
        return self._counts.get(consumer_id, 0)

    def stored(self, inserted: dict[str, int]) -> None:
        """Rows the spill store (or anything else in this process) inserted and committed."""
        for cid, n in inserted.items():
            self._change(cid, n)

    def removed(self, consumer_id: str, n: int) -> None:
        """Rows deleted (delivered) or moved to dead letters, committed."""
        self._change(consumer_id, -n)

    def resync_started(self) -> None:
        self._racing = {}

    def resynced(self, counts: dict[str, int]) -> None:
        """The table's counts, from a query started after ``resync_started``."""
        racing, self._racing = self._racing or {}, None
        for cid in set(self._counts) | set(counts) | set(racing):
            self._set(cid, counts.get(cid, 0) + racing.get(cid, 0))

    def resync_failed(self) -> None:
        self._racing = None

    def _change(self, consumer_id: str, n: int) -> None:
        if not n:
            return
        if self._racing is not None:
            self._racing[consumer_id] = self._racing.get(consumer_id, 0) + n
        self._set(consumer_id, self._counts.get(consumer_id, 0) + n)

    def _set(self, consumer_id: str, n: int) -> None:
        n = max(0, n)
        if n:
            self._counts[consumer_id] = n
        else:
            self._counts.pop(consumer_id, None)
        if self._gauge is not None:
            child = self._children.get(consumer_id)
            if child is None:
                child = self._children[consumer_id] = self._gauge.labels(consumer_id)
            child.set(n)
