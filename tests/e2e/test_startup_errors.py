"""`iotd serve`, `iotd admin` and `iotd check` against real failures, run as the real CLI in subprocesses:
each problem an operator can fix is one line on stderr naming it and the fix, with exit status 1 (issue 15,
item 9); a broker that is down is retried while `/readyz` says why."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.support.broker import MosquittoBroker, free_port
from tests.support.database import ADMIN_URL
from tests.support.scenario import SECRET_KEY, ServiceProcess, settings

BASE = ADMIN_URL.rpartition("/")[0]


def iotd(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("IOTD_")}
    full.update({"IOTD_SECRET_KEY": SECRET_KEY, "IOTD_HTTP_HOST": "127.0.0.1", **env})
    return subprocess.run([sys.executable, "-m", "distributor.cli", *args], env=full, capture_output=True,
                          text=True, timeout=60)


def one_line(done: subprocess.CompletedProcess[str], *words: str) -> str:
    """The command failed with status 1 and said so in one line holding ``words``."""
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def closed_port() -> int:
    return free_port()   # nothing listens there


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_database_that_does_not_exist_is_named_with_the_command_that_creates_it() -> None:
    done = iotd("serve", IOTD_DATABASE_URL=f"{BASE}/iotd_no_such_database", IOTD_HTTP_PORT="0")
    one_line(done, "iotd serve:", "'iotd_no_such_database' does not exist", "createdb")


def test_a_database_port_nobody_listens_on_says_connection_refused(closed_port: int) -> None:
    done = iotd("serve", IOTD_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{closed_port}/iotd", IOTD_HTTP_PORT="0")
    one_line(done, f"127.0.0.1:{closed_port}", "connection refused", "IOTD_DATABASE_URL")


def test_a_malformed_database_url_shows_the_expected_form() -> None:
    done = iotd("serve", IOTD_DATABASE_URL="postgres://u@host:notaport/db", IOTD_HTTP_PORT="0")
    one_line(done, "not a usable PostgreSQL URL", "postgresql://user:password@host:5432/database")


async def test_a_busy_port_is_named_before_the_database_is_touched(busy_port: int) -> None:
    done = await asyncio.to_thread(iotd, "serve", IOTD_DATABASE_URL=f"{BASE}/iotd_never_created",
                                   IOTD_HTTP_PORT=str(busy_port))
    one_line(done, f"port {busy_port} on 127.0.0.1 is already in use", "IOTD_HTTP_PORT")


def test_an_unknown_log_level_or_format_is_an_error_naming_the_allowed_values() -> None:
    done = iotd("serve", IOTD_LOG_LEVEL="verbose", IOTD_LOG_FORMAT="xml")
    line = one_line(done, "IOTD_LOG_LEVEL: must be one of debug, info, warning, error (got 'verbose')")
    assert "IOTD_LOG_FORMAT: must be one of json, console (got 'xml')" in line
    assert iotd("decode", "--decoder", "elsys", "--hex", "0100e1", IOTD_LOG_LEVEL="verbose").returncode == 0


async def test_admin_create_key_says_what_is_wrong_in_one_line(database_url: str) -> None:
    done = await asyncio.to_thread(iotd, "admin", "create-key", "--organization", "nope",
                                   IOTD_DATABASE_URL=database_url)
    one_line(done, "'nope' is not an organization id")
    done = await asyncio.to_thread(iotd, "admin", "create-key", "--organization",
                                   "00000000-0000-0000-0000-000000000000", IOTD_DATABASE_URL=database_url)
    one_line(done, "organization not found", "GET /api/v1/organizations")
    done = await asyncio.to_thread(iotd, "admin", "create-key", "--global",
                                   IOTD_DATABASE_URL=f"{BASE}/iotd_no_such_database")
    one_line(done, "iotd admin create-key:", "'iotd_no_such_database' does not exist")
    done = await asyncio.to_thread(iotd, "admin", "create-key", "--global", IOTD_DATABASE_URL=database_url)
    assert done.returncode == 0 and done.stdout.startswith("iotd_ak_"), done.stderr


async def readyz(port: int) -> tuple[int, dict[str, object]]:
    async with httpx.AsyncClient(timeout=5) as client:
        r = await client.get(f"http://127.0.0.1:{port}/readyz")
    return r.status_code, r.json()


async def test_a_broker_that_is_down_at_start_is_retried_and_readiness_says_why(db: str) -> None:
    broker_port = free_port()
    down = MosquittoBroker(port=broker_port)    # not started yet
    proc = ServiceProcess(settings(db, down))
    proc.start()
    try:
        async with asyncio.timeout(20):
            while True:   # the service starts without its broker
                try:
                    status, body = await readyz(proc.port)
                    break
                except httpx.HTTPError:
                    assert proc.proc is not None and proc.proc.poll() is None, proc.stderr()
                    await asyncio.sleep(0.1)
        assert status == 503
        broker = body["checks"]["broker"]    # type: ignore[index]
        assert broker["ok"] is False and f"127.0.0.1:{broker_port} (connection refused" in broker["error"]
        # `iotd check` finds the service on IOTD_HTTP_PORT and says why it is not ready
        checked = await asyncio.to_thread(iotd, "check", IOTD_HTTP_PORT=str(proc.port))
        assert checked.returncode == 1 and "broker: FAILING nothing accepts connections" in checked.stdout
        down.start()
        try:
            await proc.ready(timeout=20)   # the retry (1 s, 2 s, 4 s, …) reaches it
            checked = await asyncio.to_thread(iotd, "check", IOTD_HTTP_PORT=str(proc.port))
            assert checked.returncode == 0, checked.stdout
        finally:
            proc.kill(2)
            assert await proc.wait() == 0, proc.stderr()
            down.close()
    finally:
        proc.stop()
    assert "Traceback" not in proc.stderr()


def test_check_uses_iotd_http_port_when_no_url_is_given(closed_port: int) -> None:
    done = iotd("check", IOTD_HTTP_PORT=str(closed_port))
    assert done.returncode == 1 and f"http://127.0.0.1:{closed_port} does not answer" in done.stdout
    done = iotd("check", "--url", f"http://127.0.0.1:{closed_port}", IOTD_HTTP_PORT="1")
    assert f"http://127.0.0.1:{closed_port} does not answer" in done.stdout
