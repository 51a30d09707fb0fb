"""The demo's bad input is labelled as sent on purpose, and its unknown device is visible to the demo's own
key (issue 15): the demo maps its ChirpStack tenant to Demo City (``registry.tenancy`` rule 4)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import httpx

from distributor.demo import UNKNOWN_DEV_EUI


def test_the_demo_labels_its_bad_input_and_its_key_sees_the_unknown_device() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOTD_") and k != "XDG_RUNTIME_DIR"}
    proc = subprocess.Popen([sys.executable, "-m", "distributor.cli", "demo", "--duration", "10", "--interval",
                             "1", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    assert proc.stdout is not None
    lines: list[str] = []
    key = base = None
    unknown: list[str] = []
    for line in proc.stdout:
        lines.append(line)
        if key is None and "API key" in line:
            key = line.split()[3]
            found = re.search(r"http://127\.0\.0\.1:\d+", "".join(lines))
            assert found is not None
            base = found.group(0)
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
    assert unknown == [UNKNOWN_DEV_EUI], out
    assert "the broken frame sent on purpose, delivered raw" in out
    warnings = [i for i, line in enumerate(lines) if "decode failed" in line or "malformed ChirpStack event" in line]
    label = next(i for i, line in enumerate(lines) if "bad input sent on purpose" in line)
    assert warnings and label < warnings[0], out    # the label comes before the warnings it explains
    assert "XDG_RUNTIME_DIR" not in out
