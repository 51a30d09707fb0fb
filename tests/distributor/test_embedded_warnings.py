"""`iotd demo` on embedded PostgreSQL starts without platformdirs' XDG_RUNTIME_DIR warning (issue 15)."""

from __future__ import annotations

import os
import subprocess
import sys

NO_SESSION = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}   # as under sudo, ssh, containers


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-W", "error", "-c", code], env=NO_SESSION, capture_output=True,
                          text=True, timeout=60)


def test_pgserver_imports_without_the_runtime_dir_warning() -> None:
    bare = _run("import pgserver.postgres_server")
    assert bare.returncode != 0 and "XDG_RUNTIME_DIR" in bare.stderr   # the warning the demo printed every start
    ours = _run("from distributor.embedded import _pgserver_get_server; _pgserver_get_server()")
    assert ours.returncode == 0 and "XDG_RUNTIME_DIR" not in ours.stderr, ours.stderr
