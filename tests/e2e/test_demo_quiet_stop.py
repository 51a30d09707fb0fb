"""`iotd demo` listens on loopback unless asked, says how to change the port, and a terminal's Ctrl-C (SIGINT
to the whole process group, the embedded broker included) ends it quietly: no traceback (issue 15, item 9)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on ``port`` (Linux /proc/net/tcp, IPv4)."""
    found = set()
    for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = row.split()[1], row.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
    return found


def start_demo(*args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOTD_")}
    return subprocess.Popen([sys.executable, "-m", "distributor.cli", "demo", "--port", "0", "--interval", "1", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
                            start_new_session=True)   # its own process group, as a terminal's foreground job


def test_the_demo_binds_loopback_and_stops_quietly_on_ctrl_c() -> None:
    proc = start_demo()
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "Decoded messages" in line:
            break
    head = "".join(lines)
    found = re.search(r"listening: 127\.0\.0\.1:(\d+) \(this machine only; another port: --port N", head)
    assert found, head
    assert listening_addresses(int(found.group(1))) == {"127.0.0.1"}
    time.sleep(3)
    os.killpg(proc.pid, signal.SIGINT)   # what Ctrl-C in a terminal does
    rest, _ = proc.communicate(timeout=60)
    out = head + rest
    assert "demo stopped:" in out, out
    assert "Traceback" not in out and "CancelledError" not in out, out


def test_ctrl_c_while_the_demo_starts_exits_quietly() -> None:
    proc = start_demo()
    time.sleep(1.0)   # the embedded database is starting: the demo's own handler is not installed yet
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode in (0, 1, 130), out
    assert "Traceback" not in out and "CancelledError" not in out, out
