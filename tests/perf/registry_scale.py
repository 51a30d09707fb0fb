"""Registry scale: what N devices cost the distributor. ``python -m tests.perf --only registry``.

* import: devices per second through the REST CSV import (``bench_device_import``), measured on
  ``import_rows`` rows; the rest of the N devices are inserted with one SQL statement (the import's
  speed is a rate, and a million rows through it would take the whole run);
* cache: the registry cache (``registry.cache.RegistryCache``, what every distributor process holds)
  loaded in a fresh process: load seconds and the RSS it adds (target: 1,000,000 devices < 1 GiB), and
  the cost of one ``lorawan_device`` lookup;
* change: a device renamed by another connection, and the seconds until that running cache holds the
  new name (the NOTIFY, the debounce and the whole reload);
* start-up: ``iotd serve`` from exec to ``/readyz`` with the N devices, and its RSS then.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import queue
import random
import time
from dataclasses import dataclass
from typing import Any

from registry.cache import RegistryCache
from registry.db import create_pool, migrate
from registry.installation import open_secret_box
from tests.perf import bench_device_import
from tests.perf.traffic import rss_mib
from tests.support.api import running_api
from tests.support.broker import MosquittoBroker
from tests.support.database import create_database, drop_database
from tests.support.scenario import SECRET_KEY, ServiceProcess, settings, until_ready

BULK_EUI_PREFIX = "80"   # bulk rows: 80xxxxxxxxxxxxxx; the CSV import uses 70b3d5…


@dataclass
class RegistryFigures:
    devices: int
    import_rows: int
    import_per_s: float
    cache_load_s: float
    cache_rss_mib: float
    lookup_us: float
    change_visible_s: float
    serve_ready_s: float
    serve_rss_mib: float


async def _fill(db: str, devices: int, import_rows: int) -> float:
    """N devices in one application: ``import_rows`` through the REST import (timed), the rest by SQL."""
    async with running_api(db, log_level="warning") as api:
        org = await api.create("organizations", {"name": "scale"})
        app = await api.create("applications", {"organization_id": org["id"], "name": "sensors"})
        seconds, _ = await bench_device_import.run(api, app["id"], import_rows)
    pool = await create_pool(db)
    try:
        async with pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO devices (application_id, name, kind, decoder, dev_eui, tags, lat, lon, metadata)"
                " SELECT $1, 'bulk ' || g, 'lorawan', 'elsys', $2 || lpad(to_hex(g), 14, '0'),"
                " jsonb_build_object('building', 'b' || (g % 40), 'floor', (g % 7)::text),"
                " 55 + (g % 1000) / 10000.0, 12 + (g % 997) / 10000.0, jsonb_build_object('serial', g)"
                " FROM generate_series(1, $3) AS g", app["id"], BULK_EUI_PREFIX, max(0, devices - import_rows))
    finally:
        await pool.close()
    return import_rows / seconds


def _cache_child(db: str, results: Any) -> None:
    results.put(asyncio.run(_measure_cache(db)))


async def _measure_cache(db: str) -> tuple[float, float, float, float]:
    pool = await create_pool(db)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            box = await open_secret_box(conn, SECRET_KEY)
        gc.collect()
        before = rss_mib(os.getpid())
        cache = RegistryCache(pool, box)
        start = time.perf_counter()
        await cache.start()
        load_s = time.perf_counter() - start
        gc.collect()
        added = rss_mib(os.getpid()) - before
        euis = list(cache.snapshot.by_dev_eui)
        probe = [random.choice(euis) for _ in range(100_000)]
        snap = cache.snapshot
        start = time.perf_counter()
        for eui in probe:
            snap.lorawan_device(eui, None, None)
        lookup_us = (time.perf_counter() - start) / len(probe) * 1e6
        target = euis[len(euis) // 2]
        async with pool.acquire() as conn:
            start = time.perf_counter()
            await conn.execute("UPDATE devices SET name = 'renamed' WHERE dev_eui = $1", target)
        async with asyncio.timeout(600):
            while cache.snapshot.by_dev_eui[target].name != "renamed":
                await asyncio.sleep(0.005)
        change_s = time.perf_counter() - start
        await cache.close()
        return load_s, added, lookup_us, change_s
    finally:
        await pool.close()


def _answer(child: Any, results: Any) -> tuple[float, float, float, float]:
    """The child's figures; an error (not a hang) when it died without them."""
    while True:
        try:
            answer: tuple[float, float, float, float] = results.get(timeout=1)
            child.join(30)
            return answer
        except queue.Empty:
            if not child.is_alive():
                raise RuntimeError(f"the registry cache probe died (exit code {child.exitcode})") from None


def run(broker: MosquittoBroker, devices: int, import_rows: int) -> RegistryFigures:
    db = asyncio.run(create_database("iotd_perf_registry"))
    try:
        import_per_s = asyncio.run(_fill(db, devices, min(devices, import_rows)))
        spawn = multiprocessing.get_context("spawn")
        results: Any = spawn.Queue()
        child = spawn.Process(target=_cache_child, args=(db, results))
        child.start()
        load_s, cache_mib, lookup_us, change_s = _answer(child, results)
        service = ServiceProcess(settings(db, broker, log_level="warning"))
        start = time.perf_counter()
        service.start()
        try:
            asyncio.run(until_ready(service.port, timeout=600))
            ready_s = time.perf_counter() - start
            assert service.proc is not None
            serve_mib = rss_mib(service.proc.pid)
        finally:
            service.stop()
        return RegistryFigures(devices, min(devices, import_rows), import_per_s, load_s, cache_mib, lookup_us,
                               change_s, ready_s, serve_mib)
    finally:
        asyncio.run(drop_database(db))

