"""Every command block of the README runs as written against a live `iotd serve` (a real process on
loopback, real PostgreSQL, a private Mosquitto): each command exits 0 and each HTTP answer is 2xx.

The marker convention for blocks that are not meant to run here is in ``tests/e2e/readme_blocks.py``.
ChirpStack is played by the test: one uplink of an unregistered device is published before the run,
so the README's "register an unknown device" command has a device to register.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import aiomqtt
import asyncpg
import pytest

from distributor.demo_feed import to_json, uplink_event
from tests.e2e.readme_blocks import answers, command_blocks, script
from tests.support.broker import MosquittoBroker
from tests.support.scenario import ServiceProcess, settings

README = Path(__file__).resolve().parents[2] / "README.md"
UNKNOWN_EUI = "70b3d5e75e0001a1"


def test_blocks_are_found_and_markers_read() -> None:
    blocks = command_blocks(README.read_text())
    sections = {b.section for b in blocks if b.not_run is None}
    assert {"REST API (`/api/v1`, OpenAPI at `/docs`)", "Importing and exporting devices (CSV)",
            "Device ingest over HTTP (NB-IoT and generic devices)", "JavaScript decoders"} <= sections
    skipped = [b for b in blocks if b.not_run is not None]
    assert len(skipped) <= 2, [(b.line, b.not_run) for b in skipped]     # exceptions stay few


def test_a_marker_needs_a_reason_and_sits_right_above_the_fence() -> None:
    text = "# A\n<!-- not run: production -->\n```sh\nrm -rf /\n```\n\n## B\n```sh\necho hi\ncurl -s x\n```\n"
    first, second = command_blocks(text)
    assert (first.section, first.not_run, second.section, second.not_run) == ("A", "production", "B", None)
    assert second.curl_calls() == 1 and "rm -rf" not in script([first, second])
    with pytest.raises(ValueError, match="not run: reason"):
        command_blocks("<!-- not run -->\n```sh\necho\n```\n")


def test_curl_calls_are_counted_once_each() -> None:
    text = 'X=$(curl -s a | jq .id)\ncurl -s b \\\n  -d "$(jq -n {})"\n# curl in a comment\necho curl\n'
    assert command_blocks(f"```sh\n{text}```\n")[0].curl_calls() == 2


async def publish_unknown_uplink(port: int) -> None:
    """What ChirpStack would send for a device nobody registered yet."""
    event = uplink_event(dev_eui=UNKNOWN_EUI, data=bytes.fromhex("0100e1"), f_cnt=1, device_name="new sensor")
    async with aiomqtt.Client("127.0.0.1", port, identifier="readme-chirpstack") as client:
        await client.publish(f"application/a/device/{UNKNOWN_EUI}/event/up", to_json(event), qos=1)


async def heard(database_url: str, identifier: str, timeout: float = 10) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        async with asyncio.timeout(timeout):
            while not await conn.fetchval("SELECT count(*) FROM unknown_devices WHERE identifier = $1", identifier):
                await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def test_the_readme_commands_run_as_written(broker: MosquittoBroker, db: str, tmp_path: Path) -> None:
    for tool in ("curl", "jq"):   # not a skip: the test command installs them (deploy/dev/services.sh)
        assert shutil.which(tool), f"the README's commands need {tool}; deploy/dev/services.sh installs it"
    blocks = command_blocks(README.read_text())
    proc = ServiceProcess(settings(db, broker))
    proc.start()
    try:
        await proc.ready()
        await publish_unknown_uplink(broker.port)
        await heard(db, UNKNOWN_EUI)
        env = {k: v for k, v in proc.env.items() if not k.startswith("IOTD_API_")}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        (tmp_path / "run.sh").write_text(script(blocks))
        done = await asyncio.to_thread(subprocess.run, ["bash", "run.sh"], cwd=tmp_path, env=env,
                                       capture_output=True, text=True, timeout=180)
    finally:
        proc.stop()
    report = f"stderr:\n{done.stderr[-6000:]}\nstdout:\n{done.stdout[-3000:]}\nservice:\n{proc.stderr()}"
    assert done.returncode == 0, report
    got = answers(done.stderr)
    failed = [(status, url) for status, url in got if not 200 <= status < 300]
    assert not failed, f"{failed}\n{report}"
    assert len(got) == sum(b.curl_calls() for b in blocks if b.not_run is None), report
