"""``iotd devices import`` shows a progress bar when stderr is a terminal (issue 15), also on a terminal that
reports no size (``docker exec -t``, ``script``), where tqdm used to draw a bar zero columns wide."""

from __future__ import annotations

import asyncio
import fcntl
import os
import struct
import sys
import termios
from pathlib import Path

import pytest

from tests.support.api import Api

ROWS = 1500   # two requests of CHUNK_ROWS, so the bar moves in between


def _read_all(fd: int) -> bytes:
    os.set_blocking(fd, False)
    data = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:   # EAGAIN when drained, EIO once the child closed its end
            return data
        if not chunk:
            return data
        data += chunk


async def _import(api: Api, tmp_path: Path, name: str, columns: int | None) -> tuple[str, str]:
    """Import ROWS devices with stderr on a terminal of ``columns`` (0: one that reports 0x0; None: a pipe)."""
    org = await api.create("organizations", {"name": name})
    app = (await api.create("applications", {"organization_id": org["id"], "name": "sensors"}))["id"]
    path = tmp_path / f"{name}.csv"
    prefix = {"zero": "a1", "wide": "a2", "pipe": "a3"}[name]
    path.write_text("name;kind;dev_eui\n" + "".join(f"d{i};lorawan;{prefix}{i:014x}\n" for i in range(ROWS)))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env |= {"IOTD_API_URL": api.base_url, "IOTD_API_KEY": api.admin_key}
    leader = follower = -1
    if columns is not None:
        leader, follower = os.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24 if columns else 0, columns, 0, 0))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "distributor.cli", "devices", "import", str(path), "--application", app, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=follower if columns is not None else asyncio.subprocess.PIPE)
    if columns is not None:
        os.close(follower)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err
    if columns is not None:
        err = _read_all(leader)
        os.close(leader)
    return out.decode(), err.decode(errors="replace")


@pytest.mark.parametrize(("name", "columns"), [("zero", 0), ("wide", 100)])
async def test_a_terminal_shows_the_bar(api: Api, tmp_path: Path, name: str, columns: int) -> None:
    out, terminal = await _import(api, tmp_path, name, columns)
    assert out.startswith(f"created {ROWS},")
    assert "import: 100%|" in terminal and f"{ROWS}/{ROWS}" in terminal, terminal
    assert max(len(line) for line in terminal.replace("\r", "\n").splitlines()) <= (columns or 80)


async def test_a_pipe_gets_no_bar(api: Api, tmp_path: Path) -> None:
    out, err = await _import(api, tmp_path, "pipe", None)
    assert out.startswith(f"created {ROWS},") and "import:" not in err and "\r" not in err
