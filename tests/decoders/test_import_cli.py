"""`iotd decoders import-ttn` on a small repository written here: examples run, the report says pass or
fail per codec, passing codecs are registered in PostgreSQL and the distributor can compile them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg

from decoders.js import JsCodec
from tests.decoders.test_js_import import WIND_DEVICE_YAML, WIND_JS, write
from tests.support.database import create_database, drop_database

GOOD_CODEC_YAML = """
uplinkDecoder:
  fileName: wind.js
  examples:
    - description: 32 knots from the North
      input: {fPort: 1, bytes: [0x00, 0x20]}
      output:
        data: {direction: N, speed: 32, on: 'on'}
"""
BAD_CODEC_YAML = GOOD_CODEC_YAML.replace("fileName: wind.js", "fileName: gust.js")
GUST_JS = WIND_JS.replace("speed: speed", "speed: speed + 1")


def repository(root: Path) -> Path:
    return write(root, {
        "vendor/index.yaml": "vendors:\n  - id: acme\n    name: ACME Sensors\n",
        "vendor/acme/index.yaml": "endDevices:\n  - wind\n  - gust\n",
        "vendor/acme/wind.yaml": WIND_DEVICE_YAML,
        "vendor/acme/gust.yaml": WIND_DEVICE_YAML.replace("wind-codec", "gust-codec").replace("Wind", "Gust"),
        "vendor/acme/wind-codec.yaml": GOOD_CODEC_YAML,
        "vendor/acme/gust-codec.yaml": BAD_CODEC_YAML,
        "vendor/acme/wind.js": WIND_JS,
        "vendor/acme/gust.js": GUST_JS,
    })


def iotd(*args: str, database_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ}
    env.pop("IOTD_DATABASE_URL", None)
    if database_url:
        env["IOTD_DATABASE_URL"] = database_url
    return subprocess.run([sys.executable, "-m", "distributor.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120)


async def test_import_ttn_reports_and_registers_the_passing_codecs(tmp_path: Path) -> None:
    root = repository(tmp_path)
    dry = iotd("decoders", "import-ttn", str(root), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "PASS ttn:acme/wind-codec (1 passed, 0 failed)" in dry.stdout
    assert "FAIL ttn:acme/gust-codec (0 passed, 1 failed)" in dry.stdout
    assert "would register 1 decoders" in dry.stdout

    url = await create_database("iotd_import")
    try:
        done = iotd("decoders", "import-ttn", str(root), database_url=url)
        assert done.returncode == 0, done.stderr
        assert "registered: 1 new, 0 updated" in done.stdout
        again = iotd("decoders", "import-ttn", str(root), "--strict", database_url=url)
        assert again.returncode == 1 and "registered: 0 new, 0 updated, 1 unchanged" in again.stdout
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch("SELECT id, organization_id, dialect, source, vendor, model FROM js_decoders")
            actions = await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'import'")
        finally:
            await conn.close()
        assert [(r["id"], r["organization_id"], r["dialect"]) for r in rows] == [("ttn-acme-wind-codec", None, "ttn")]
        assert rows[0]["vendor"] == "ACME Sensors" and rows[0]["model"] == "Wind Sensor" and actions == 2
        stored = JsCodec(rows[0]["source"], dialect=rows[0]["dialect"])
        assert stored.decode(bytes([1, 5]), 1).data == {"direction": "E", "speed": 5, "on": "on"}
    finally:
        await drop_database(url)


def test_import_refuses_a_directory_that_is_not_a_repository(tmp_path: Path) -> None:
    result = iotd("decoders", "import-chirpstack", str(tmp_path), "--dry-run")
    assert result.returncode != 0 and "no codecs found" in result.stderr
