"""``iotd serve --processes N``: N distributor processes on one machine sharing the ChirpStack
subscription (MQTT v5 shared subscription), as several machines would (DESIGN.md, Scale).

Process 0 serves the REST API, ingest and ``/metrics`` on ``IOTD_HTTP_PORT``; process k > 0 runs
intake and delivery only, with its own ``/metrics`` and ``/readyz`` on ``IOTD_HTTP_PORT + k``. Each
has a stable client id (``<IOTD_MQTT_CLIENT_ID>-<k>``), so its persistent session survives a
restart. SIGTERM/SIGINT are passed on and every process drains as a single one would; a process
that dies is started again after a second. PostgreSQL coordinates the rest (retries claimed with
SKIP LOCKED, registry changes through LISTEN/NOTIFY).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from types import FrameType

import structlog

from distributor.settings import Settings
from distributor.sources.chirpstack_mqtt import WEEK_S

log = structlog.get_logger("iotd.supervisor")
RESTART_DELAY_S = 1.0


def child_env(base: Mapping[str, str], settings: Settings, index: int) -> dict[str, str]:
    """The environment of process ``index`` (pure, so the rules above are tested as a table)."""
    env = dict(base)
    env["IOTD_MQTT_SHARE_GROUP"] = settings.mqtt_share_group or "iotd"
    env["IOTD_MQTT_CLIENT_ID"] = f"{settings.mqtt_client_id}-{index}"
    if settings.mqtt_share_group is None and settings.mqtt_session_expiry_s is None:
        # one machine's processes, restarted within a second: the lone instance's week, not a share member's hour
        env["IOTD_MQTT_SESSION_EXPIRY_S"] = str(WEEK_S)
    if index > 0:
        env["IOTD_RUN_API"] = "false"
        env["IOTD_HTTP_PORT"] = str(settings.http_port + index if settings.http_port else 0)
    return env


def supervise(settings: Settings, processes: int, extra_args: list[str]) -> int:
    stopping = False
    children: dict[int, subprocess.Popen[bytes]] = {}

    def start(index: int) -> None:
        children[index] = subprocess.Popen([sys.executable, "-m", "distributor.cli", "serve", *extra_args],
                                           env=child_env(os.environ, settings, index))

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for index in range(processes):
        start(index)
    while True:
        if stopping:
            codes = [child.wait() for child in children.values()]
            return max(codes, default=0)
        for index, child in list(children.items()):
            code = child.poll()
            if code is not None and not stopping:
                log.error("a process exited; starting it again", process=index, exit_code=code)
                time.sleep(RESTART_DELAY_S)
                if not stopping:
                    start(index)
        time.sleep(0.2)
