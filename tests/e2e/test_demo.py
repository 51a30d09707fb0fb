"""The README's first command, `bash deploy/dev/demo.sh`: `iotd demo` on embedded defaults (PostgreSQL
from the pgserver wheel, a private Mosquitto) shows decoded messages at both consumers and hands out a
working API key."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from distributor.demo import UNKNOWN_DEV_EUI

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_shows_decoded_messages_and_an_api_that_answers() -> None:
    """One demo run: decoded messages at both consumers, a working API key, its bad input labelled as sent
    on purpose, and its unknown device visible to its own key (the demo maps its ChirpStack tenant to Demo
    City: ``registry.tenancy`` rule 4)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOTD_") and k != "XDG_RUNTIME_DIR"}
    # the README's first command as written, with a duration so that it ends (demo.sh passes its arguments on)
    proc = subprocess.Popen(["bash", "deploy/dev/demo.sh", "--duration", "12", "--interval", "1", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True, cwd=ROOT)
    assert proc.stdout is not None
    lines: list[str] = []
    answered = None
    key = base = None
    unknown: list[str] = []
    for line in proc.stdout:
        lines.append(line)
        if answered is None and "API key" in line:
            key = line.split()[3]
            found = re.search(r"http://127\.0\.0\.1:\d+", "".join(lines))
            assert found is not None
            base = found.group(0)
            answered = httpx.get(f"{base}/api/v1/devices", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        if key and base and not unknown and "bad input sent on purpose" in line:
            deadline = time.monotonic() + 6
            while not unknown and time.monotonic() < deadline:
                answer = httpx.get(f"{base}/api/v1/unknown-devices", headers={"Authorization": f"Bearer {key}"},
                                   timeout=10)
                assert answer.status_code == 200, answer.text
                unknown = [d["identifier"] for d in answer.json()["items"]]
                time.sleep(0.3)
    assert proc.wait(timeout=60) == 0, "".join(lines)
    out = "".join(lines)
    assert answered is not None and answered.status_code == 200 and answered.json()["total"] == 3
    assert "[decoder ok]" in out and "senml[" in out and "temperature=" in out
    assert re.search(r"demo stopped: [1-9]\d* messages at the webhook, [1-9]\d* on the MQTT topic", out), out
    assert unknown == [UNKNOWN_DEV_EUI], out
    assert "the broken frame sent on purpose, delivered raw" in out
    warnings = [i for i, line in enumerate(lines) if "decode failed" in line or "malformed ChirpStack event" in line]
    label = next(i for i, line in enumerate(lines) if "bad input sent on purpose" in line)
    assert warnings and label < warnings[0], out    # the label comes before the warnings it explains
    assert "XDG_RUNTIME_DIR" not in out


def test_the_demo_on_an_external_database_asks_for_a_stable_secret_key() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOTD_")}
    env["IOTD_DATABASE_URL"] = "postgresql://postgres@127.0.0.1:5432/postgres"
    done = subprocess.run([sys.executable, "-m", "distributor.cli", "demo", "--duration", "1"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "set IOTD_SECRET_KEY too" in done.stderr
