"""Seconds to import devices from CSV through the REST API, then to import the same file again (unchanged):
``python -m tests.perf.bench_device_import [ROWS]`` (default 10,000; one request, on a fresh database).

Importing builds nothing; ``run()`` does the work, so a smoke test can call it with a few rows.
"""

from __future__ import annotations

import asyncio
import sys
import time

import httpx

from registry.device_rules import luhn_ok
from tests.support.api import Api, running_api
from tests.support.database import create_database, drop_database


def imei(i: int) -> str:
    """The i-th valid IMEI (the 15th digit is the check digit)."""
    base = f"35{i:012d}"
    return next(base + d for d in "0123456789" if luhn_ok(base + d))


def make_csv(rows: int, application_id: str, first: int = 0) -> str:
    """A realistic mix: 70 % lorawan (half with an app_key), 20 % nbiot, 10 % http; tags and metadata on all."""
    lines = ["name,kind,application_id,dev_eui,join_eui,app_key,imei,decoder,lat,lon,interval_s,tags,metadata"]
    for i in range(first, first + rows):
        tags = f"building=b{i % 40};floor={i % 7}"
        where = f"{55 + i % 1000 / 10000:.4f},{12 + i % 997 / 10000:.4f}"
        meta = '"{""installed"": ""2024-05-01"", ""serial"": ' + str(i) + "}\""
        if i % 10 < 7:
            key = f"{i:032x}" if i % 2 else ""
            lines.append(f"sensor {i},lorawan,{application_id},{0x70B3D50000000000 + i:016x},70b3d57ed0000000,{key},,"
                         f"elsys,{where},900,{tags},{meta}")
        elif i % 10 < 9:
            lines.append(f"meter {i},nbiot,{application_id},,,,{imei(i)},json,{where},3600,{tags},{meta}")
        else:
            lines.append(f"gateway {i},http,{application_id},,,,,json,{where},60,{tags},{meta}")
    return "\n".join(lines) + "\n"


async def timed_import(client: httpx.AsyncClient, text: str) -> tuple[float, dict[str, int]]:
    start = time.perf_counter()
    r = await client.post("/api/v1/devices/import", content=text.encode(), headers={"Content-Type": "text/csv"})
    seconds = time.perf_counter() - start
    assert r.status_code == 200, r.text[:500]
    body = r.json()
    return seconds, {k: body[k] for k in ("created", "updated", "unchanged", "errors")}


async def run(api: Api, application_id: str, rows: int, first: int = 0) -> tuple[float, float]:
    """Import ``rows`` new devices, then the same file again; the seconds of each."""
    text = make_csv(rows, application_id, first)
    async with api.as_key(api.admin_key) as client:
        client.timeout = httpx.Timeout(300)
        new_s, counts = await timed_import(client, text)
        assert counts == {"created": rows, "updated": 0, "unchanged": 0, "errors": 0}, counts
        again_s, counts = await timed_import(client, text)
        assert counts == {"created": 0, "updated": 0, "unchanged": rows, "errors": 0}, counts
    return new_s, again_s


async def main(rows: int) -> None:
    url = await create_database("iotd_bench")
    try:
        async with running_api(url) as api:
            org = await api.create("organizations", {"name": "bench"})
            app = await api.create("applications", {"organization_id": org["id"], "name": "sensors"})
            new_s, again_s = await run(api, app["id"], rows)
    finally:
        await drop_database(url)
    print(f"import of {rows} new devices: {new_s:.2f} s ({rows / new_s:,.0f} rows/s)")
    print(f"import again, unchanged:      {again_s:.2f} s ({rows / again_s:,.0f} rows/s)")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000))
