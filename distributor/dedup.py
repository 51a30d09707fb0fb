"""De-duplication that never acknowledges a copy before its first copy is done (pure, no I/O).

An uplink has one or two keys: the source's own id (``id_key``: ChirpStack's ``deduplicationId``, a
device's ``Idempotency-Key``) and, for LoRaWAN, its frame (dev_eui, fCnt, fPort, payload).
``Deduplicator.admit`` decides what an arriving uplink is:

* ``NEW``: no copy is in progress or done. It is registered in the in-progress table and its finalizer
  is observed; when the finalizer fires ok, its keys go into the seen windows (``SeenWindow``: ids for
  ``id_window_s``, frames for ``frame_window_s``).
* ``JOINED``: a copy is still in progress (in a lane, spilling, in a JavaScript worker). The duplicate
  holds its own finalizer and is released with the first copy's outcome: ok, and it is acknowledged too;
  not ok, and it is not, and no key is remembered, so a later copy is processed anew. A crash before the
  first copy is done therefore loses neither.
* ``DONE``: a copy was done within the window: acknowledged at once.

The table is keyed by the frame when there is one (every copy of a LoRaWAN uplink, redelivered or from
another ChirpStack replica, has the same frame), else by the id: one key per message in progress.
Bounded: an entry lives only while its first copy is unfinished, and every unfinished message holds an
in-flight place at its source (``IOTD_MQTT_MAX_IN_FLIGHT`` messages, ``IOTD_HTTP_MAX_IN_FLIGHT`` requests),
so the table never holds more entries than those two caps together; joined copies hold places too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

from distributor.ack import Finalizer

MAX_KEYS = 500_000   # per window, both generations together (SeenWindow)
STAMP_S = 0.1        # keys added this close together share one time object (24 bytes saved a key)
NEW = "new"
JOINED = "joined"
DONE = "done"


class SeenWindow:
    """Keys done recently, bounded in time and size, in two generations: keys go into the young one;
    when it holds ``max_keys // 2`` keys, or began ``window_s`` ago, the old one is dropped whole and the
    young one becomes the old. A lookup checks the key's own time, so a key older than the window never
    counts; every key is remembered for ``window_s`` or until ``max_keys // 2`` newer keys came, whichever
    is first. Every step is O(1): nothing is ever deleted one by one.

    Why not one insertion-ordered dict evicting its oldest key (as before issue 16's soak): finding the
    oldest key of a dict walks past every key deleted in front of it, so each add cost 50-70 µs once the
    window was full (0.7 µs before): a third of a core at 2,000 msg/s, more than a core at 11,000.
    And a dict keeping n live keys while keys come and go is rebuilt at the power of two above 3n slots
    (2**21, ~42 MiB, at 500,000): the soak's +20 MiB step six minutes in. Generations only grow, and a
    dropped one is freed whole.

    Memory: each entry is the key's 64-bit hash (Python's own, computed once per string and cached) and
    a time shared by the keys added within ``STAMP_S``; at ``MAX_KEYS`` both generations together take
    ~21 MiB. Two different keys share a hash with odds of about one in 2**64 / 500,000 per lookup; a
    collision would count a new message as seen, far rarer than any failure the service is built for."""

    def __init__(self, window_s: float = 300.0, max_keys: int = MAX_KEYS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._window_s = window_s
        self._generation_keys = max(1, max_keys // 2)
        self._clock = clock
        self._young: dict[int, float] = {}       # hash of the key -> when it was added
        self._old: dict[int, float] = {}
        self._young_since = float("-inf")
        self._stamp = float("-inf")              # the time object keys added now share

    def seen(self, key: Hashable) -> bool:
        """Record the key and say whether it was already there."""
        now = self._clock()
        if self.has(key, now):
            return True
        self.add(key, now)
        return False

    def __contains__(self, key: object) -> bool:
        return self.has(key, self._clock())

    def has(self, key: object, now: float) -> bool:
        digest = hash(key)
        added = self._young.get(digest)
        if added is None:
            added = self._old.get(digest)
        return added is not None and added >= now - self._window_s

    def add(self, key: Hashable, now: float) -> None:
        """Remember the key from ``now`` on."""
        if len(self._young) >= self._generation_keys or now - self._young_since >= self._window_s:
            self._old, self._young, self._young_since = self._young, {}, now
        if now - self._stamp >= STAMP_S:
            self._stamp = now
        self._young[hash(key)] = self._stamp   # at most STAMP_S early: it expires that much sooner, never later

    def __len__(self) -> int:
        """Keys held (some may be past the window until their generation is dropped)."""
        return len(self._young) + len(self._old)


class _Copies:
    """One message in progress: its keys, the other ids its joined copies came with, and those copies.
    Called with the outcome when the first copy's finalizer fires."""

    __slots__ = ("frame_key", "id_key", "joined", "other_ids", "table")

    def __init__(self, table: Deduplicator, id_key: str, frame_key: Hashable | None) -> None:
        self.table = table
        self.id_key = id_key
        self.frame_key = frame_key
        self.other_ids: list[str] | None = None     # e.g. another ChirpStack replica's deduplicationId
        self.joined: list[Finalizer] | None = None

    def __call__(self, ok: bool) -> None:
        self.table._finished(self, ok)


class Deduplicator:
    """The in-progress table in front of the seen windows; see the module docstring."""

    def __init__(self, id_window_s: float = 600.0, frame_window_s: float = 60.0, max_keys: int = MAX_KEYS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._seen_ids = SeenWindow(id_window_s, max_keys, clock)
        self._seen_frames = SeenWindow(frame_window_s, max_keys, clock)
        self._progress: dict[Hashable, _Copies] = {}   # by frame, or by id for messages without one

    @property
    def in_progress(self) -> int:
        """Messages in progress (first copies), each holding an in-flight place at its source."""
        return len(self._progress)

    def admit(self, id_key: str, frame_key: Hashable | None, finalizer: Finalizer) -> str:
        """``NEW`` (go on), ``JOINED`` (the finalizer is held until the first copy is done) or ``DONE``."""
        key = id_key if frame_key is None else frame_key
        copies = self._progress.get(key)
        if copies is not None:
            finalizer.hold()
            if copies.joined is None:
                copies.joined = []
            copies.joined.append(finalizer)
            if id_key != copies.id_key:
                if copies.other_ids is None:
                    copies.other_ids = []
                copies.other_ids.append(id_key)
            return JOINED
        now = self._clock()
        if self._seen_ids.has(id_key, now) or (frame_key is not None and self._seen_frames.has(frame_key, now)):
            return DONE
        copies = self._progress[key] = _Copies(self, id_key, frame_key)
        finalizer.observe(copies)
        return NEW

    def _finished(self, copies: _Copies, ok: bool) -> None:
        frame_key = copies.frame_key
        del self._progress[copies.id_key if frame_key is None else frame_key]
        if ok:
            now = self._clock()
            self._seen_ids.add(copies.id_key, now)
            if frame_key is not None:
                self._seen_frames.add(frame_key, now)
            if copies.other_ids is not None:
                for other in copies.other_ids:
                    self._seen_ids.add(other, now)
        if copies.joined is not None:
            for joined in copies.joined:
                joined.release(ok)
