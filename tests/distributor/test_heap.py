"""The collector's settings for the long-running service (``distributor.heap``): what start-up leaves."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator

import pytest

from distributor import heap


@pytest.fixture
def restored() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restored")
def test_settle_freezes_what_start_up_loaded_and_makes_collections_rarer() -> None:
    loaded = [{"device": [i]} for i in range(1000)]   # what start-up keeps for good (the registry, say)
    heap.settle()
    assert gc.get_freeze_count() >= len(loaded)
    assert gc.get_threshold() == (heap.YOUNG_THRESHOLD, heap.MIDDLE_THRESHOLD, heap.OLD_THRESHOLD)
    assert all(gc.get_count()[k] < 50 for k in (1, 2))


@pytest.mark.usefixtures("restored")
def test_a_new_registry_snapshot_joins_the_frozen_heap_without_a_collection() -> None:
    heap.settle()
    frozen = gc.get_freeze_count()
    collections = sum(s["collections"] for s in gc.get_stats())
    snapshot = [{"device": [i]} for i in range(5000)]   # tracked (holds a list)
    heap.keep_snapshot()
    assert gc.get_freeze_count() >= frozen + len(snapshot)
    assert sum(s["collections"] for s in gc.get_stats()) == collections


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_large_blocks_stay_mapped_so_freed_ones_go_back_to_the_system() -> None:
    assert heap.fix_mmap_threshold()
