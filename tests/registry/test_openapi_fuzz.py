"""Schemathesis against the running API's OpenAPI: generated and mutated requests must never get a
5xx, and every answer must match the documented status codes, content types and schemas.

The service runs as a child process (real HTTP, real PostgreSQL); schemathesis runs as its CLI.
Key revocation is left out: the fuzzer would revoke the very key it tests with.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from distributor.settings import Settings
from tests.support.api import first_key
from tests.support.database import create_database, drop_database
from tests.support.scenario import SECRET_KEY, ServiceProcess

CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"


@pytest.fixture
async def served() -> AsyncIterator[tuple[ServiceProcess, str]]:
    url = await create_database("iotd_fuzz")
    key = await first_key(url)
    proc = ServiceProcess(Settings(database_url=url, mqtt_url=None, secret_key=SECRET_KEY, http_host="127.0.0.1"))
    proc.start()
    try:
        await proc.ready()
        yield proc, key
    finally:
        proc.stop()
        await drop_database(url)


async def test_no_server_errors_and_no_schema_violations(served: tuple[ServiceProcess, str], tmp_path: Path) -> None:
    proc, key = served
    st = Path(sys.executable).parent / "st"
    cmd = [str(st), "run", f"http://127.0.0.1:{proc.port}/openapi.json", "-H", f"Authorization: Bearer {key}",
           "--checks", CHECKS, "--max-examples", "12", "--phases", "coverage,fuzzing,stateful",
           "--include-path-regex", "^/api/v1", "--exclude-path-regex", "revoke", "--seed", "20261123",
           "--workers", "2", "--no-color"]
    result = await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True, timeout=600,
                                     cwd=tmp_path)
    summary = result.stdout[-4000:]
    assert result.returncode == 0, summary + result.stderr[-2000:] + proc.stderr()
    assert "passed" in summary and "Tested:" in summary
