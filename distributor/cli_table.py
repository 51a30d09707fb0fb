"""Plain text tables for the CLI: columns as wide as their widest cell, the last cut to the terminal.

Columns sized to their content never run into each other, whatever length a decoder id or vendor
name has. On a terminal the last column is cut with "…" at the terminal's width (so no line wraps);
into a pipe or file nothing is cut, because scripts want whole values (``--json`` is there too).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from typing import TextIO

GAP = "  "
MIN_LAST = 12   # the last column keeps at least this much, even on a narrow terminal


def table_lines(header: Sequence[str], rows: Sequence[Sequence[str]], width: int | None) -> list[str]:
    """The header and rows, left-aligned; lines longer than ``width`` (None: no limit) end in "…"."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = []
    for row in (header, *rows):
        cells = [str(cell).ljust(w) for cell, w in zip(row[:-1], widths, strict=False)]
        line = GAP.join([*cells, str(row[-1])]).rstrip()
        if width is not None:
            limit = max(width, len(GAP.join(cells)) + len(GAP) + MIN_LAST)
            if len(line) > limit:
                line = line[:limit - 1] + "…"
        lines.append(line)
    return lines


def terminal_width(stream: TextIO = sys.stdout) -> int | None:
    """The terminal's width when ``stream`` is one (COLUMNS wins, as usual); None for a pipe or a file."""
    return shutil.get_terminal_size().columns if stream.isatty() else None
