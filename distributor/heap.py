"""The garbage collector's settings for a long-running distributor.

Measured (issue 16, ``python -m tests.perf --only throughput``): with CPython's defaults the cyclic
collector took ~8 % of the CPU at 11,000 msg/s. Each message allocates short-lived containers that
reference counting frees at once; what the collector walks again and again is what stays: the
registry snapshot, the de-duplication windows, the modules, and the 2,000 messages in flight. So:

* once start-up has loaded all that, one full collection and ``gc.freeze()``: it moves every object
  alive then to a generation the collector never walks (reference counting still frees them);
* after each *full* registry reload, ``gc.freeze()`` again (without a collection, which would take
  seconds at a million devices): the new snapshot is never walked, and the old one is freed by
  reference counting when nothing uses it any more;
* a young generation of 20,000 objects instead of 700, so collections are ~30 times rarer while each
  one still walks a few milliseconds' worth. Cyclic garbage lives a little longer; nothing in the
  hot path makes cycles, so the memory this holds is small (the soak measures it).

The cost of a freeze is a list splice; a frozen object that later becomes cyclic garbage is never
collected, which is why only start-up and a full reload freeze, not every device update.

And glibc's malloc: a large block (a dict's table, a batch's buffer) is mapped on its own and returned to
the system when freed, unless glibc has raised its threshold for that, which it does by itself each time
such a block is freed; from then on, blocks of that size come from the heap and its high-water mark stays
in the RSS. The soak showed it as steps of 5-10 MiB whenever a de-duplication generation was dropped.
``settle`` fixes the threshold at glibc's default (128 KiB), which also turns the raising off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

YOUNG_THRESHOLD = 20_000
MIDDLE_THRESHOLD = 20
OLD_THRESHOLD = 20
M_MMAP_THRESHOLD = -3           # mallopt's parameter number (glibc malloc.h)
MMAP_THRESHOLD_BYTES = 128 * 1024


def settle() -> None:
    """After start-up: collect once, freeze what is alive, make collections rarer."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
    fix_mmap_threshold()


def fix_mmap_threshold() -> bool:
    """glibc only (elsewhere nothing happens and False is returned): large blocks always mapped, so freed ones
    go back to the system."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def keep_snapshot() -> None:
    """After a full registry reload: the new snapshot joins what the collector never walks."""
    gc.freeze()
