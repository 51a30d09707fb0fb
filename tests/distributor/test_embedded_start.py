"""The demo's embedded PostgreSQL failing to start is one line, never a traceback (found by CI: Ctrl-C while
``iotd demo`` started reached pgserver's initdb, in the same process group, and its CalledProcessError came
out as an "uncaught exception" with a traceback).

Catching a signal in the middle of a real initdb depends on timing, so pgserver's ``get_server`` is replaced
here by one that fails as that initdb did (``tests/e2e/test_demo_quiet_stop.py`` runs the real demo)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from distributor import embedded
from distributor.startup import StartupError


async def test_an_interrupted_initdb_is_a_one_line_startup_error(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Path] = []

    def interrupted(pgdata: str, **kwargs: Any) -> Any:
        made.append(Path(pgdata))
        raise subprocess.CalledProcessError(1, ["/opt/pgserver/bin/initdb", "-D", pgdata])

    monkeypatch.setattr(embedded, "_pgserver_get_server", lambda: interrupted)
    with pytest.raises(StartupError) as err:
        async with embedded.embedded_postgres():
            pass
    assert str(err.value) == ("the embedded PostgreSQL did not start: initdb exited with status 1"
                              " (interrupted, or out of disk space?)")
    assert made and not made[0].exists()          # its half-made data directory is removed
