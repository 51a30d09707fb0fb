"""The partitions of ``messages`` (migration 0010): made ahead, dropped whole once expired.

``messages`` is partitioned by retention class (``messages_r<days>``, one per retention an application
has had) and each class by time, in UTC: a day wide for up to ``WIDE_AFTER_DAYS`` days of retention, a
week wide (from Mondays) beyond, so a ten-year retention is ~520 partitions rather than 3,650. A message
is kept at least its retention and at most one partition width longer: a partition is dropped once its
newest possible message is older than the retention (``expired``).

``maintain`` runs at start-up and every hour in each distributor (under an advisory lock, so instances
take turns): it makes today's partitions and the next ``AHEAD_DAYS`` days' for every retention in use
and drops the expired ones. A write that still finds no partition (an application whose new retention
the hour has not seen yet, a clock that ran ahead) makes the ones it needs with ``ensure`` and writes again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg

from registry.history_erasure import erase_again

WIDE_AFTER_DAYS = 62
WEEK_DAYS = 7
AHEAD_DAYS = 2
EPOCH = date(2001, 1, 1)        # a Monday: week-wide partitions start on Mondays
HISTORY_LOCK = 0x10d_4157       # advisory lock id: one instance at a time changes the partitions
_NAME = re.compile(r"^messages_r(\d+)_(\d{8})$")


@dataclass(frozen=True, slots=True)
class Partition:
    retention_days: int
    start: date
    end: date                   # exclusive

    @property
    def name(self) -> str:
        return f"messages_r{self.retention_days}_{self.start:%Y%m%d}"

    def expired(self, today: date) -> bool:
        """Every message it can hold is older than its retention (counted in whole UTC days)."""
        return self.end + timedelta(days=self.retention_days) <= today


def width_days(retention_days: int) -> int:
    return 1 if retention_days <= WIDE_AFTER_DAYS else WEEK_DAYS


def partition_for(retention_days: int, day: date) -> Partition:
    """The partition of ``retention_days``'s class that holds messages of ``day`` (UTC)."""
    width = width_days(retention_days)
    start = EPOCH + timedelta(days=(day - EPOCH).days // width * width)
    return Partition(retention_days, start, start + timedelta(days=width))


def class_table(retention_days: int) -> str:
    return f"messages_r{retention_days}"


def parse_name(name: str) -> Partition | None:
    """The partition a table name stands for (None for anything else)."""
    found = _NAME.match(name)
    if found is None:
        return None
    retention = int(found.group(1))
    start = datetime.strptime(found.group(2), "%Y%m%d").date()
    return Partition(retention, start, start + timedelta(days=width_days(retention)))


def _midnight(day: date) -> str:
    return f"{day.isoformat()} 00:00:00+00"


async def ensure(conn: asyncpg.Connection, wanted: Iterable[tuple[int, date]]) -> list[str]:
    """Make the partitions holding these (retention, day) pairs where missing; returns the names made.
    Runs in the caller's transaction, under the advisory lock."""
    parts = sorted({partition_for(r, d) for r, d in wanted if r > 0}, key=lambda p: (p.retention_days, p.start))
    if not parts:
        return []
    await conn.execute("SELECT pg_advisory_xact_lock($1)", HISTORY_LOCK)
    existing = {r["relname"] for r in await conn.fetch(
        "SELECT c.relname FROM pg_class c WHERE c.relname LIKE 'messages\\_r%' AND c.relkind IN ('r', 'p')")}
    made: list[str] = []
    for part in parts:
        parent = class_table(part.retention_days)
        if parent not in existing:
            await conn.execute(f"CREATE TABLE {parent} PARTITION OF messages FOR VALUES IN ({part.retention_days})"
                               " PARTITION BY RANGE (received_at)")
            existing.add(parent)
        if part.name not in existing:
            # rows of ~1 KB are compressed inline (lz4) instead of only past the usual 2 KB
            await conn.execute(f"CREATE TABLE {part.name} PARTITION OF {parent} FOR VALUES FROM"
                               f" ('{_midnight(part.start)}') TO ('{_midnight(part.end)}')"
                               " WITH (toast_tuple_target = 128)")
            existing.add(part.name)
            made.append(part.name)
    return made


async def partitions(conn: asyncpg.Connection) -> list[Partition]:
    """Every time partition of ``messages`` there is."""
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname LIKE 'messages\\_r%'")
    found = (parse_name(r["relname"]) for r in rows)
    return sorted((p for p in found if p is not None), key=lambda p: (p.retention_days, p.start))


@dataclass(frozen=True, slots=True)
class Maintenance:
    created: list[str]
    dropped: list[str]
    erased: int = 0                 # messages of recently erased devices that arrived after the erasure


async def maintain(conn: asyncpg.Connection, now: datetime | None = None) -> Maintenance:
    """Make the partitions of today and the next ``AHEAD_DAYS`` days for every retention in use; drop the
    expired ones (whole tables: no row is ever deleted)."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", HISTORY_LOCK)   # ensure's too: held per session
        retentions = [r["retention_days"] for r in await conn.fetch(
            "SELECT DISTINCT retention_days FROM applications WHERE retention_days > 0")]
        created = await ensure(conn, ((r, today + timedelta(days=k)) for r in retentions
                                      for k in range(AHEAD_DAYS + 1)))
        dropped = []
        for part in await partitions(conn):
            if part.expired(today):
                await conn.execute(f"DROP TABLE IF EXISTS {part.name}")
                dropped.append(part.name)
        erased = await erase_again(conn)
    return Maintenance(created, dropped, erased)
