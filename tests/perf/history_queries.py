"""The message history's read side at scale (issue 17): a year of one device's 10-minute data beside other
devices' years, in a database made for the run, and the API's own queries on it.

The rows are written the way the store writes them (COPY into the partitioned table, the partitions made by
``registry.history_partitions``), with the retention of a year (week-wide partitions), then ANALYZEd. Each
query runs a few times and the median counts: the chart query (``registry.api.history.BUCKETS``) at a day,
an hour and 10 minutes, and the message page (the newest 100, and 100 from the oldest end by cursor).
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson

from distributor.history import COLUMNS
from registry.api.history import BUCKETS
from registry.db import create_pool, migrate
from registry.history_partitions import ensure
from tests.support.database import create_database, drop_database

RETENTION = 400
STEP = timedelta(minutes=10)
REPEATS = 5
PAGE = ("SELECT received_at, id, body FROM messages WHERE device_id = $1 AND received_at >= $2 AND received_at < $3"
        " AND ($4::timestamptz IS NULL OR (received_at, id) < ($4, $5::uuid))"
        " ORDER BY received_at DESC, id DESC LIMIT 101")


@dataclass
class HistoryQueries:
    rows: int                     # in the table
    per_device: int               # the charted device's messages
    load_s: float                 # COPY of every row
    chart_ms: dict[str, float]    # bucket width → median query time
    page_newest_ms: float
    page_oldest_ms: float


def _body(device: str, k: int) -> bytes:
    return orjson.dumps({"schema": "iotd.message/1", "id": str(uuid.uuid4()), "device": {"id": device},
                         "measurements": [{"name": "temperature", "value": 20 + k % 50 / 10, "unit": "Cel"},
                                          {"name": "humidity", "value": 40 + k % 30, "unit": "%RH"}]})


async def _timed(conn: asyncpg.Connection, query: str, *args: object) -> float:
    times = []
    for _ in range(REPEATS):
        began = time.perf_counter()
        await conn.fetch(query, *args)
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


async def _run(per_device: int, other_devices: int) -> HistoryQueries:
    db = await create_database("iotd_perf_history")
    pool = await create_pool(db)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        org, app = str(uuid.uuid4()), str(uuid.uuid4())
        devices = [str(uuid.uuid4()) for _ in range(1 + other_devices)]
        end = datetime.now(UTC).replace(second=0, microsecond=0)
        start = end - STEP * per_device
        began = time.perf_counter()
        async with pool.acquire() as conn:
            async with conn.transaction():
                await ensure(conn, {(RETENTION, (start + timedelta(days=d)).date())
                                    for d in range((end - start).days + 2)})
            for device in devices:
                rows = [(RETENTION, start + STEP * k, str(uuid.uuid4()), device, app, org, 1, b"\x01\x02",
                         _body(device, k), ["temperature", "humidity"], [20 + k % 50 / 10, 40.0 + k % 30])
                        for k in range(per_device)]
                await conn.copy_records_to_table("messages", records=rows, columns=COLUMNS)
            await conn.execute("ANALYZE messages")
        load_s = time.perf_counter() - began
        charted = devices[0]
        async with pool.acquire() as conn:
            chart = {label: await _timed(conn, BUCKETS, charted, start, end, width, "temperature")
                     for label, width in (("1d", timedelta(days=1)), ("1h", timedelta(hours=1)),
                                          ("10m", timedelta(minutes=10)))}
            newest = await _timed(conn, PAGE, charted, start, end, None, None)
            oldest_row = await conn.fetchrow("SELECT received_at, id FROM messages WHERE device_id = $1"
                                             " ORDER BY received_at, id OFFSET 100 LIMIT 1", charted)
            oldest = await _timed(conn, PAGE, charted, start, end, oldest_row["received_at"], oldest_row["id"])
        return HistoryQueries(per_device * len(devices), per_device, load_s, chart, newest, oldest)
    finally:
        await pool.close()
        await drop_database(db)


def run(per_device: int, other_devices: int) -> HistoryQueries:
    return asyncio.run(_run(per_device, other_devices))
