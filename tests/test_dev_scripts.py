"""deploy/dev/venv.sh says what it is doing before each slow step (issue 15: a first install was ~27 s
without a word). Run on a copy of the script with a stand-in Python that logs its calls, so the test
takes no network and leaves the real .venv alone."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FAKE_VENV_PYTHON = """#!/usr/bin/env bash
echo "CALL python $*" >&2
if [ "$*" = "-m pip show -q quickjs" ]; then exit 1; fi
"""
FAKE_PYTHON = """#!/usr/bin/env bash
if [ "$1" = "--version" ]; then echo "Python 3.11.7"; exit 0; fi
echo "CALL base $*" >&2
mkdir -p .venv/bin
cp "$(dirname "$0")/venv-python" .venv/bin/python
chmod +x .venv/bin/python
"""


def _checkout(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    (root / "deploy" / "dev").mkdir(parents=True)
    shutil.copy(ROOT / "deploy" / "dev" / "venv.sh", root / "deploy" / "dev" / "venv.sh")
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    tools = tmp_path / "tools"
    tools.mkdir()
    for name, text in (("python", FAKE_PYTHON), ("venv-python", FAKE_VENV_PYTHON)):
        (tools / name).write_text(text)
        (tools / name).chmod(0o755)
    return root


def _run(root: Path, tmp_path: Path) -> list[str]:
    done = subprocess.run(["bash", str(root / "deploy" / "dev" / "venv.sh")], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "PYTHON": str(tmp_path / "tools" / "python")},
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""   # everything it says goes to stderr
    return done.stderr.splitlines()


def test_every_slow_step_is_announced_first(tmp_path: Path) -> None:
    root = _checkout(tmp_path)
    lines = _run(root, tmp_path)
    calls = [i for i, line in enumerate(lines) if line.startswith("CALL") and "pip show" not in line]
    assert [lines[i] for i in calls] == [
        "CALL base -m venv .venv",
        "CALL python -m pip install -q --upgrade pip",
        "CALL python -m pip install -q -e .[test]",   # not a terminal: pip stays quiet
    ]
    for i in calls:   # the line before each slow call says what is about to happen
        assert lines[i - 1].startswith("venv.sh: "), lines
    assert lines[calls[0] - 1] == "venv.sh: creating the virtualenv .venv with Python 3.11.7"
    assert "installing iotd and its dependencies" in lines[calls[2] - 1]
    assert lines[-1].startswith("venv.sh: ready in ")

    again = _run(root, tmp_path)   # the stamp is newer than pyproject.toml: nothing to do, and it says so
    assert again == ["venv.sh: .venv is up to date"]
