"""Every log line is one JSON object, whoever logs it: our structlog lines, the libraries' stdlib lines
(asyncpg, gmqtt, aiohttp, uvicorn, asyncio), their tracebacks, a record that cannot be formatted, a warning
and an uncaught exception. The logging runs in a child process, as `iotd serve` configures it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])

CHILD = textwrap.dedent('''
    import asyncio, logging, warnings
    import structlog
    from distributor.logging import configure

    configure("info", "json")
    logging.getLogger("asyncpg.pool").warning('connection lost: "quoted"\\nsecond line\\n\\tthird')
    try:
        raise ConnectionResetError("peer said: \\"bye\\"\\nand left")
    except ConnectionResetError:
        logging.getLogger("gmqtt.mqtt.protocol").warning("[EXC: CONN LOST]", exc_info=True)
        logging.getLogger("aiohttp.client").exception("request failed")
        structlog.get_logger("iotd.test").exception("our own line", detail="multi\\nline", raw=b"\\x00\\xff")
    logging.getLogger("uvicorn.error").error("Exception in ASGI application\\n  File x, line 1")
    logging.getLogger("asyncpg").warning("bad %d template", "not a number")     # cannot be formatted
    logging.getLogger("gmqtt").info("below the library threshold: not printed")
    structlog.get_logger().warning("a lone surrogate \\udc80 in a value", value="\\udcff")
    warnings.warn("a warning\\nover two lines", UserWarning)

    async def fail() -> None:
        raise RuntimeError("task failed\\nbadly")

    async def main() -> None:
        asyncio.get_running_loop().create_task(fail())
        await asyncio.sleep(0.05)

    asyncio.run(main())
    import gc; gc.collect()     # "Task exception was never retrieved" is logged when the task is collected
    raise ValueError("uncaught\\nat the top")
''')


def test_every_stderr_line_is_one_json_object() -> None:
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    events = [json.loads(line) for line in lines]          # each line parses on its own
    assert all(isinstance(e, dict) and "event" in e and "level" in e for e in events), lines
    by_event = {e["event"]: e for e in events}

    pool = by_event['connection lost: "quoted"\nsecond line\n\tthird']
    assert pool["logger"] == "asyncpg.pool" and pool["level"] == "warning" and "timestamp" in pool
    lost = by_event["[EXC: CONN LOST]"]
    assert lost["logger"] == "gmqtt.mqtt.protocol" and 'ConnectionResetError: peer said: "bye"' in lost["exception"]
    assert "Traceback" in lost["exception"] and "\n" in lost["exception"]       # the traceback, kept whole
    assert "Traceback" in by_event["request failed"]["exception"]
    ours = by_event["our own line"]
    assert ours["detail"] == "multi\nline" and "ConnectionResetError" in ours["exception"]
    assert by_event["Exception in ASGI application\n  File x, line 1"]["logger"] == "uvicorn.error"
    unformattable = by_event["a log record could not be formatted"]
    assert unformattable["logger"] == "asyncpg" and unformattable["template"] == "bad %d template"
    assert not any("below the library threshold" in e["event"] for e in events)
    assert "a lone surrogate \udc80 in a value" in by_event
    assert any(e.get("logger") == "py.warnings" and "a warning\nover two lines" in e["event"] for e in events)
    assert any(e["event"].startswith("Task exception was never retrieved") and "task failed\nbadly" in e["exception"]
               for e in events)
    uncaught = by_event["uncaught exception"]
    assert uncaught["level"] == "critical" and "ValueError: uncaught\nat the top" in uncaught["exception"]


SERVER_CHILD = textwrap.dedent('''
    import asyncio
    import httpx
    from fastapi import FastAPI
    from distributor.http_app import start_http
    from distributor.logging import configure

    configure("info", "json")
    app = FastAPI()

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("handler failed\\nover two lines")

    async def main() -> None:
        server, task, port = await start_http(app, "127.0.0.1", 0)
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{port}/boom")).status_code == 500
        server.should_exit = True
        await task

    asyncio.run(main())
''')


def test_the_embedded_http_server_logs_an_application_error_as_one_json_line() -> None:
    # uvicorn installs its own text handlers unless told not to; its traceback would break the JSON log
    done = subprocess.run([sys.executable, "-c", SERVER_CHILD], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stderr.splitlines()]
    failed = [e for e in events if e["event"].startswith("Exception in ASGI application")]
    assert len(failed) == 1 and "handler failed\nover two lines" in failed[0]["exception"], events
