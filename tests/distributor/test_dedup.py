"""The in-progress table (issue 14, finding 1) as tables: a copy of an unfinished message is never released
before its first copy is done, and is released with the first copy's outcome. Pure: no I/O, a fake clock.

Before, ``Pipeline.is_duplicate`` marked a key seen on arrival and the duplicate's hold was released at once,
so the source acknowledged it while the first copy could still be lost in a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from distributor.ack import Finalizer
from distributor.dedup import DONE, JOINED, NEW, Deduplicator, SeenWindow

F1 = ("a81758fffe0312ab", 7, 5, "digest-a")
F1_NEW_PAYLOAD = ("a81758fffe0312ab", 7, 5, "digest-b")   # the same counter after a reset, another reading
F2 = ("a81758fffe0312ab", 8, 5, "digest-a")


@dataclass
class World:
    """Copies by name: each has a finalizer whose pipeline hold is released right after ``admit``, as
    ``Pipeline.handle`` does; a NEW copy keeps one more hold, its 'delivery', finished by the table's steps."""

    table: Deduplicator
    now: list[float]
    fired: dict[str, bool] = field(default_factory=dict)
    finalizers: dict[str, Finalizer] = field(default_factory=dict)
    unfinished: set[str] = field(default_factory=set)

    def arrive(self, name: str, id_key: str, frame: tuple[str, int, int, str] | None) -> str:
        fin = Finalizer(lambda ok: self.fired.__setitem__(name, ok))
        self.finalizers[name] = fin
        verdict = self.table.admit(id_key, frame, fin)
        if verdict == NEW:
            fin.hold()          # the delivery (a lane, a spill, a JavaScript worker) holds it
            self.unfinished.add(name)
        fin.release(True)       # the pipeline's own hold
        return verdict

    def finish(self, name: str, ok: bool) -> None:
        self.unfinished.discard(name)
        self.finalizers[name].release(ok)


def world(id_window_s: float = 600, frame_window_s: float = 60) -> World:
    now = [0.0]
    return World(Deduplicator(id_window_s, frame_window_s, clock=lambda: now[0]), now)


# (step, ...) rows: ("arrive", name, id, frame, verdict), ("finish", name, ok), ("wait", seconds),
# ("fired", {name: outcome}) — the copies fired so far and with which outcome.
SCENARIOS: dict[str, list[tuple[object, ...]]] = {
    "a redelivery waits for its first copy and is acked with it": [
        ("arrive", "first", "cs:1", F1, NEW),
        ("arrive", "redelivered", "cs:1", F1, JOINED),
        ("fired", {}),
        ("finish", "first", True),
        ("fired", {"first": True, "redelivered": True}),
        ("arrive", "later", "cs:1", F1, DONE),          # done: acked at once, as before
        ("fired", {"first": True, "redelivered": True, "later": True}),
    ],
    "a failed first copy fails its copies and is not remembered": [
        ("arrive", "first", "cs:1", F1, NEW),
        ("arrive", "resent", "cs:1", F1, JOINED),
        ("finish", "first", False),
        ("fired", {"first": False, "resent": False}),
        ("arrive", "again", "cs:1", F1, NEW),           # processed anew
        ("fired", {"first": False, "resent": False}),
    ],
    "the same frame under another deduplicationId joins, and both ids are remembered": [
        ("arrive", "replica-a", "cs:a", F1, NEW),
        ("arrive", "replica-b", "cs:b", F1, JOINED),
        ("arrive", "replica-b-redelivered", "cs:b", F1, JOINED),
        ("finish", "replica-a", True),
        ("fired", {"replica-a": True, "replica-b": True, "replica-b-redelivered": True}),
        ("wait", 120),                                  # past the frame window, within the id window
        ("arrive", "replica-b-late", "cs:b", F1, DONE),
    ],
    "a counter reset with a new payload is a new message": [
        ("arrive", "before-reset", "cs:1", F1, NEW),
        ("arrive", "after-reset", "cs:2", F1_NEW_PAYLOAD, NEW),
        ("finish", "before-reset", True),
        ("arrive", "after-reset-replica", "cs:3", F1_NEW_PAYLOAD, JOINED),
        ("finish", "after-reset", True),
        ("fired", {"before-reset": True, "after-reset": True, "after-reset-replica": True}),
    ],
    "an identical frame is one message within the frame window only": [
        ("arrive", "first", "cs:1", F1, NEW),
        ("finish", "first", True),
        ("wait", 59),
        ("arrive", "copy", "cs:2", F1, DONE),
        ("wait", 2),
        ("arrive", "after-window", "cs:3", F1, NEW),
    ],
    "copies of different messages do not wait for each other": [
        ("arrive", "one", "cs:1", F1, NEW),
        ("arrive", "two", "cs:2", F2, NEW),
        ("arrive", "two-again", "cs:2", F2, JOINED),
        ("finish", "two", True),
        ("fired", {"two": True, "two-again": True}),
        ("finish", "one", True),
    ],
    "sources without a frame (device HTTP ingest) use the id alone": [
        ("arrive", "post", "http:dev:key-1", None, NEW),
        ("arrive", "resend", "http:dev:key-1", None, JOINED),
        ("arrive", "other-key", "http:dev:key-2", None, NEW),
        ("fired", {}),
        ("finish", "post", True),
        ("fired", {"post": True, "resend": True}),
    ],
}


@pytest.mark.parametrize("steps", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_in_progress_table(steps: list[tuple[object, ...]]) -> None:
    w = world()
    for step in steps:
        match step:
            case ("arrive", str(name), str(id_key), frame, verdict):
                assert w.arrive(name, id_key, frame) == verdict, step  # type: ignore[arg-type]
            case ("finish", str(name), bool(ok)):
                w.finish(name, ok)
            case ("wait", float(seconds) | int(seconds)):
                w.now[0] += seconds
            case ("fired", dict(expected)):
                assert w.fired == expected, step
            case _:
                raise AssertionError(f"unknown step {step}")
    assert w.table.in_progress == len(w.unfinished)


def test_the_table_holds_only_messages_in_flight() -> None:
    """One entry per unfinished first copy: bounded by the sources' in-flight caps, and empty once everything
    is done (no leak, whatever the outcome)."""
    w = world()
    for i in range(100):
        assert w.arrive(f"m{i}", f"cs:{i}", ("eui", i, 1, "d")) == NEW
        assert w.arrive(f"m{i}-copy", f"cs:{i}", ("eui", i, 1, "d")) == JOINED
        assert w.arrive(f"m{i}-replica", f"cs:{i}-r", ("eui", i, 1, "d")) == JOINED
    assert w.table.in_progress == 100          # one entry per first copy; its copies hold places at their source
    for i in range(100):
        w.finish(f"m{i}", ok=i % 2 == 0)
    assert w.table.in_progress == 0
    assert len(w.fired) == 300 and all(w.fired[f"m{i}-copy"] is (i % 2 == 0) for i in range(100))


def test_a_finalizer_that_fires_inside_admit_still_clears_its_entry() -> None:
    """A message with no consumers is done while the pipeline still handles it: its keys go straight to done."""
    table = Deduplicator(clock=lambda: 0.0)
    fired: list[bool] = []
    fin = Finalizer(fired.append)
    assert table.admit("cs:1", F1, fin) == NEW
    fin.release(True)
    assert fired == [True] and table.in_progress == 0
    assert table.admit("cs:1", F1, Finalizer(fired.append)) == DONE


def test_finalizer_observer_runs_once_after_the_callback() -> None:
    order: list[str] = []
    fin = Finalizer(lambda ok: order.append(f"callback {ok}"))
    fin.observe(lambda ok: order.append(f"first observer {ok}"))
    fin.observe(lambda ok: order.append(f"second observer {ok}"))
    fin.hold()
    fin.release(False)
    fin.release(True)
    assert order == ["callback False", "first observer False", "second observer False"]
    with pytest.raises(RuntimeError):
        fin.observe(lambda ok: None)


def test_the_seen_window_keeps_no_key_alive() -> None:
    # issue 16 (soak): at 2,000 msg/s the id window holds up to 500,000 entries; it keeps each key's hash and
    # a shared time, not the key objects (a ChirpStack id string, a frame tuple with its payload hex)
    import gc
    import weakref

    class Key:
        def __hash__(self) -> int:
            return 42

    key = Key()
    alive = weakref.ref(key)
    window = SeenWindow(window_s=60)
    window.add(key, 0.0)
    del key
    gc.collect()
    assert alive() is None
    assert window.has(Key(), 1.0)      # what counts is the hash, as for every key


def test_a_full_window_adds_as_fast_as_an_empty_one() -> None:
    """Issue 16: evicting the oldest key of one insertion-ordered dict walked past every key deleted before
    it: once the window was full, each add cost 50-70 µs instead of 0.7 µs. Compared in one process, best of
    three, so the machine's speed cancels out; the old code was ~70 times slower here."""
    import time

    def add_cost(window: SeenWindow, keys: list[str], start: float) -> float:
        best = float("inf")
        for attempt in range(3):
            began = time.perf_counter()
            for k, key in enumerate(keys):
                window.add(f"{attempt}:{key}", start + k * 1e-4)
            best = min(best, time.perf_counter() - began)
        return best

    keys = [f"{i:032x}" for i in range(5_000)]
    empty = add_cost(SeenWindow(window_s=1e9, max_keys=100_000), keys, 0.0)
    full = SeenWindow(window_s=1e9, max_keys=100_000)
    for i in range(250_000):        # filled, and past several turnovers
        full.add(i, i * 1e-4)
    assert len(full) <= 100_000
    assert add_cost(full, keys, 30.0) < 5 * empty
