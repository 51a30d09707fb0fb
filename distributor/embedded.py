"""Embedded infrastructure for `iotd demo`: a real PostgreSQL (pgserver's binaries) and a private Mosquitto.

Used only when no database or broker is configured, so the demo runs on a fresh machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import tempfile
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from distributor.startup import StartupError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _pgserver_get_server() -> Any:
    """pgserver's ``get_server``, imported without platformdirs' ``XDG_RUNTIME_DIR is not set`` warning.

    pgserver asks platformdirs for a per-user runtime directory when it is imported (for a lock file
    and, on long data paths, the socket). Without a login session (sudo, ssh without PAM, containers,
    CI) the variable is unset, and platformdirs warns and falls back to ``/run/user/<uid>`` or a
    ``runtime-<uid>`` directory in the temp dir, which it has checked is the user's own with mode 0700.
    That fallback is what the demo needs, so only that warning is silenced; a private runtime dir per
    run would instead split the lock pgserver shares between its servers of the same user.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"XDG_RUNTIME_DIR ")
        from pgserver.postgres_server import get_server
    return get_server


@contextlib.asynccontextmanager
async def embedded_postgres() -> AsyncIterator[str]:
    """A throwaway PostgreSQL 16 in a temp dir; yields its URL."""
    try:
        get_server = _pgserver_get_server()
    except ImportError as exc:  # pragma: no cover - pgserver is a dependency
        raise RuntimeError("pgserver is not installed; set IOTD_DATABASE_URL instead") from exc
    data_dir = Path(tempfile.mkdtemp(prefix="iotd-demo-pg-"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = await asyncio.to_thread(get_server, str(data_dir), cleanup_mode="stop")
    except subprocess.CalledProcessError as exc:   # e.g. Ctrl-C reached initdb (same process group): one line
        shutil.rmtree(data_dir, ignore_errors=True)
        tool = Path(str(exc.cmd[0] if isinstance(exc.cmd, list | tuple) else exc.cmd)).name
        raise StartupError(f"the embedded PostgreSQL did not start: {tool} exited with status {exc.returncode}"
                           " (interrupted, or out of disk space?)") from None
    try:
        yield str(server.get_uri())
    finally:
        await asyncio.to_thread(server.cleanup)
        shutil.rmtree(data_dir, ignore_errors=True)


MOSQUITTO_CONF = """listener {port} 127.0.0.1
allow_anonymous true
persistence false
# Debian's default 1000 silently drops QoS 1 messages for an absent subscriber
max_queued_messages 100000
max_inflight_messages 1000
"""


@contextlib.asynccontextmanager
async def embedded_mosquitto() -> AsyncIterator[str]:
    """A private Mosquitto on a free loopback port; yields its mqtt:// URL."""
    binary = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
    if binary is None:
        raise RuntimeError("no MQTT broker configured and mosquitto is not installed: "
                           "`apt-get install mosquitto` or set IOTD_MQTT_URL")
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="iotd-demo-mqtt-"))
    conf = work / "mosquitto.conf"
    conf.write_text(MOSQUITTO_CONF.format(port=port))
    # its own session: a terminal's Ctrl-C reaches the demo alone, which disconnects and then stops the broker
    # (had the broker died with it, the clients' reconnect tasks would be cancelled mid-flight, with tracebacks)
    proc = subprocess.Popen(  # noqa: ASYNC220 - starts at once; we only wait on it off the loop
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(100):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                await writer.wait_closed()
                break
            except OSError:
                await asyncio.sleep(0.05)
        else:
            raise RuntimeError("the embedded mosquitto did not start")
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 10)
        shutil.rmtree(work, ignore_errors=True)
