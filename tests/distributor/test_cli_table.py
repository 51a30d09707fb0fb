"""`iotd decoders list` columns never overflow (issue 15): sized to their content, cut to a terminal."""

from __future__ import annotations

import os
import subprocess
import sys

from distributor.cli_table import table_lines


def test_columns_are_as_wide_as_their_widest_cell() -> None:
    lines = table_lines(("ID", "VENDOR", "MODEL"), [("a-very-long-decoder-id-indeed", "V", "m"),
                                                   ("x", "Long Vendor Name Inc.", "model")], None)
    assert lines == ["ID                             VENDOR                 MODEL",
                     "a-very-long-decoder-id-indeed  V                      m",
                     "x                              Long Vendor Name Inc.  model"]


def test_the_last_column_is_cut_at_the_width_and_kept_whole_without_one() -> None:
    rows = [("id", "vendor", "a model name that goes on and on")]
    assert table_lines(("ID", "VENDOR", "MODEL"), rows, 30)[1] == "id  vendor  a model name that…"
    assert table_lines(("ID", "VENDOR", "MODEL"), rows, None)[1].endswith("goes on and on")
    narrow = table_lines(("ID", "VENDOR", "MODEL"), rows, 5)[1]   # never fewer than MIN_LAST of the last column
    assert narrow == "id  vendor  a model nam…"


def _decoders_list_on_a_terminal(columns: int) -> list[str]:
    leader, follower = os.openpty()
    env = {**os.environ, "COLUMNS": str(columns)}
    proc = subprocess.Popen([sys.executable, "-m", "distributor.cli", "decoders", "list"], stdout=follower,
                            stderr=subprocess.PIPE, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:   # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(timeout=30) == 0
    return b"".join(chunks).decode().splitlines()


def test_decoders_list_fits_the_terminal_and_lines_up() -> None:
    lines = _decoders_list_on_a_terminal(60)
    assert len(lines) > 20 and lines[0].split() == ["ID", "VENDOR", "MODEL"]
    assert max(len(line) for line in lines) <= 60
    vendor_at = lines[0].index("VENDOR")
    assert all(line[vendor_at - 2:vendor_at] == "  " and line[vendor_at] != " " for line in lines[1:])
