"""``iotd devices import|export`` as a user runs it: a subprocess against the running API."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.support.api import Api


async def iotd(api: Api, *args: str, key: str | None = None) -> tuple[int, str, str]:
    """Run ``python -m distributor.cli`` without blocking the service in this event loop."""
    env = {**os.environ, "IOTD_API_URL": api.base_url, "IOTD_API_KEY": key if key is not None else api.admin_key}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "distributor.cli", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    assert api.admin_key not in out.decode() + err.decode()
    return proc.returncode, out.decode(), err.decode()


async def application(api: Api, name: str) -> str:
    org = await api.create("organizations", {"name": name})
    app: str = (await api.create("applications", {"organization_id": org["id"], "name": "sensors"}))["id"]
    return app


async def test_import_prints_a_summary_and_the_failed_lines(api: Api, tmp_path: Path) -> None:
    app = await application(api, "Aarhus")
    good = ("name;kind;dev_eui;tags\r\n"
            "room 1;lorawan;70b3d50000000001;floor=1\r\n"
            "room 2;lorawan;70b3d50000000002;floor=2\r\n"
            "printer;http;;\r\n")
    path = tmp_path / "devices.csv"
    path.write_text("\ufeff" + good + "broken;lorawan;xyz;\r\n", encoding="utf-8")
    code, out, _ = await iotd(api, "devices", "import", str(path), "--application", app, "--dry-run")
    assert code == 1 and out.splitlines()[0] == ("created 3, updated 0, unchanged 0, errors 1"
                                                 " (dry run: nothing was stored)")
    code, out, err = await iotd(api, "devices", "import", str(path), "--application", app)
    assert code == 1, err
    assert out.splitlines() == ["created 3, updated 0, unchanged 0, errors 1",
                                "line 5: dev_eui must be 16 hex characters, got 'xyz'"]
    assert "1 new devices have ingest keys" in err and "iotd_ik_" not in out + err
    path.write_text(good, encoding="utf-8")
    keys = tmp_path / "keys.csv"
    code, out, _ = await iotd(api, "devices", "import", str(path), "--application", app, "--ingest-keys", str(keys))
    assert code == 0 and out.splitlines() == ["created 0, updated 0, unchanged 3, errors 0"]
    assert not keys.exists()


async def test_line_numbers_stay_right_across_requests(api: Api, tmp_path: Path) -> None:
    app = await application(api, "Odense")
    rows = [f"meter {i},http" for i in range(1_200)]
    rows[1_100] = "meter 1100,satellite"            # line 1,102: in the second request of 1,000 rows
    rows[3] = "meter 3,"                            # line 5
    path = tmp_path / "many.csv"
    path.write_text("name,kind\n" + "\n".join(rows) + "\n", encoding="utf-8")
    keys = tmp_path / "keys.csv"
    code, out, err = await iotd(api, "devices", "import", str(path), "--application", app, "--ingest-keys", str(keys))
    assert code == 1, err
    assert out.splitlines() == ["created 1198, updated 0, unchanged 0, errors 2",
                                "line 5: kind must be one of lorawan, nbiot, http, mqtt, got ''",
                                "line 1102: kind must be one of lorawan, nbiot, http, mqtt, got 'satellite'"]
    written = keys.read_text().splitlines()
    assert written[0] == "line,device_id,ingest_key" and len(written) == 1 + 1198
    assert written[1].startswith("2,") and ",iotd_ik_" in written[1]
    assert keys.stat().st_mode & 0o077 == 0


async def test_export_writes_the_file(api: Api, tmp_path: Path) -> None:
    app = await application(api, "Vejle")
    path = tmp_path / "in.csv"
    path.write_text("name,kind,dev_eui\nbin,lorawan,70b3d500000000ff\n", encoding="utf-8")
    assert (await iotd(api, "devices", "import", str(path), "--application", app))[0] == 0
    out_file = tmp_path / "out.csv"
    code, _, err = await iotd(api, "devices", "export", "--application", app, "-o", str(out_file))
    assert code == 0 and "1 devices written" in err
    assert out_file.read_text().splitlines()[1].startswith(f"bin,lorawan,{app},70b3d500000000ff,")
    code, out, _ = await iotd(api, "devices", "export", "--application", app, "--kind", "http")
    assert code == 0 and out.splitlines() == [out_file.read_text().splitlines()[0]]


async def test_usage_and_connection_problems_exit_2(api: Api, tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("name,kind,colour\nx,http,red\n", encoding="utf-8")
    code, _, err = await iotd(api, "devices", "import", str(path))
    assert code == 2 and "unknown column 'colour'" in err
    path.write_text("name,kind\nx,http\n", encoding="utf-8")
    code, _, err = await iotd(api, "devices", "import", str(path), "--api-url", "http://127.0.0.1:9")
    assert code == 2 and "cannot reach the API at http://127.0.0.1:9" in err
    code, _, err = await iotd(api, "devices", "import", str(path), key="iotd_ak_wrong")
    assert code == 2 and "401" in err and "iotd_ak_wrong" not in err
    code, _, err = await iotd(api, "devices", "export", key="")
    assert code == 2 and "no API key" in err
    code, _, err = await iotd(api, "devices", "import", str(tmp_path / "missing.csv"))
    assert code == 2 and "cannot read" in err
    assert (await iotd(api, "devices", "import"))[0] == 2
