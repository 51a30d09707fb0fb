"""Batched writes of what devices said: latest message, counters, status/join/log, unknown devices.

Nothing here is on the delivery guarantee's path: these are statistics and state, grouped
from many messages into one statement per table every ``interval_s`` (DESIGN.md: no
per-message database round trip).

Each table is written on its own (``registry.batches.write_isolating``): a row PostgreSQL refuses
is logged, counted and dropped, and every other row of every tenant is written; a table whose
write fails because the database is away keeps its rows for the next flush. The buffers are
bounded (``MAX_UNKNOWN``, ``MAX_EVENTS``) so a long outage or a flood of unknown devices cannot
grow memory without limit: beyond them, the newest unknown devices and the oldest events are
counted and dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import asyncpg
import structlog

from decoders.contract import NUMBER
from registry.batches import reason, write_isolating
from registry.periodic import run_every

log = structlog.get_logger("iotd.registry.state")


@dataclass(slots=True)
class _Unknown:
    first_seen: datetime
    last_seen: datetime
    count: int
    detail: dict[str, Any]


@dataclass(slots=True)
class _Latest:
    at: datetime
    f_cnt: int | None
    message: dict[str, Any]
    count: int


@dataclass(slots=True)
class _Day:
    count: int
    best_rssi: int | None
    best_snr: float | None


def _best_radio(message: dict[str, Any]) -> tuple[int | None, float | None]:
    """The best RSSI and SNR among the gateways that heard the message (LoRaWAN only)."""
    radio = (message.get("network") or {}).get("radio") or []
    rssi = [r["rssi"] for r in radio if isinstance(r.get("rssi"), int)]
    snr = [r["snr"] for r in radio if isinstance(r.get("snr"), NUMBER)]
    return (max(rssi) if rssi else None), (float(max(snr)) if snr else None)


N = TypeVar("N", int, float)
MAX_UNKNOWN = 100_000          # distinct unknown devices buffered between flushes
MAX_EVENTS = 100_000           # device events buffered between flushes
Event = tuple[str, str, datetime, dict[str, Any]]
Writer = Callable[[asyncpg.Connection, Sequence[Any]], Awaitable[None]]


def _better(a: N | None, b: N | None) -> N | None:
    return b if a is None else a if b is None else max(a, b)


class StateWriter:
    def __init__(self, pool: asyncpg.Pool, interval_s: float = 0.5,
                 on_dropped: Callable[[str, str, int], None] | None = None) -> None:
        self._pool = pool
        self._interval_s = interval_s
        self._unknown: dict[tuple[str, str], _Unknown] = {}
        self._latest: dict[str, _Latest] = {}
        self._events: list[Event] = []
        self._status: dict[str, dict[str, Any]] = {}
        self._daily: dict[tuple[str, date], _Day] = {}
        self._task: asyncio.Task[None] | None = None
        self._on_dropped = on_dropped or (lambda table, why, n: None)
        self.flushes = 0
        self.dropped = 0

    def _drop(self, table: str, why: str, n: int = 1) -> None:
        self.dropped += n
        self._on_dropped(table, why, n)

    # --- called from the hot path: dict updates only -------------------------------------
    def unknown_device(self, source: str, identifier: str, detail: dict[str, Any]) -> None:
        now = datetime.now(UTC)
        entry = self._unknown.get((source, identifier))
        if entry is None:
            if len(self._unknown) >= MAX_UNKNOWN:
                self._drop("unknown_devices", "buffer_full")
                return
            self._unknown[(source, identifier)] = _Unknown(now, now, 1, detail)
        else:
            entry.last_seen = now
            entry.count += 1
            entry.detail = detail

    def message(self, device_id: str, f_cnt: int | None, message: dict[str, Any]) -> None:
        now = datetime.now(UTC)
        entry = self._latest.get(device_id)
        if entry is None:
            self._latest[device_id] = _Latest(now, f_cnt, message, 1)
        else:
            entry.at, entry.f_cnt, entry.message = now, f_cnt, message
            entry.count += 1
        rssi, snr = _best_radio(message)
        day = self._daily.get((device_id, now.date()))
        if day is None:
            self._daily[(device_id, now.date())] = _Day(1, rssi, snr)
        else:
            day.count += 1
            day.best_rssi = _better(day.best_rssi, rssi)
            day.best_snr = _better(day.best_snr, snr)

    def event(self, device_id: str, event: str, detail: dict[str, Any], state: dict[str, Any]) -> None:
        """A non-uplink event (join, status, log): kept as a row and merged into the device state."""
        if len(self._events) >= MAX_EVENTS:
            del self._events[: MAX_EVENTS // 10]
            self._drop("device_events", "buffer_full", MAX_EVENTS // 10)
        self._events.append((device_id, event, datetime.now(UTC), detail))
        self._status.setdefault(device_id, {}).update(state)

    # --- background flushing ---------------------------------------------------------------
    async def start(self) -> None:
        self._task = asyncio.create_task(run_every(self._interval_s, self.flush, log, "device state flush"),
                                         name="state-writer")

    async def flush(self) -> None:
        unknown, self._unknown = self._unknown, {}
        latest, self._latest = self._latest, {}
        events, self._events = self._events, []
        status, self._status = self._status, {}
        daily, self._daily = self._daily, {}
        if not (unknown or latest or events or status or daily):
            return
        units: list[tuple[str, Sequence[Any], Writer]] = [
            ("unknown_devices", list(unknown.items()), _write_unknown),
            ("device_state", list(latest.items()), _write_latest),
            ("device_events", events, _write_events),
            ("device_state", list(status.items()), _write_status),
            ("device_daily_stats", list(daily.items()), _write_daily),
        ]
        written = 0
        try:
            async with self._pool.acquire() as conn:
                for table, rows, write in units:
                    for row, exc in await write_isolating(conn, rows, write):
                        self._drop(table, "refused")
                        log.error("PostgreSQL refused a device-state row; dropped, the rest is written", table=table,
                                  row=_describe(row), error=reason(exc))
                    written += 1
        except BaseException:
            self._restore(unknown, latest, events, status, daily, written)
            raise
        self.flushes += 1

    def _restore(self, unknown: dict[tuple[str, str], _Unknown], latest: dict[str, _Latest], events: list[Event],
                 status: dict[str, dict[str, Any]], daily: dict[tuple[str, date], _Day], written: int) -> None:
        """Put back what a failed flush did not write (its first ``written`` units were committed)."""
        if written < 1:
            for key, u in unknown.items():
                cur = self._unknown.get(key)
                self._unknown[key] = u if cur is None else _Unknown(u.first_seen, cur.last_seen, u.count + cur.count,
                                                                      cur.detail)
        if written < 2:
            for dev, lt in latest.items():
                cur_l = self._latest.get(dev)
                self._latest[dev] = lt if cur_l is None else _Latest(cur_l.at, cur_l.f_cnt, cur_l.message,
                                                                      lt.count + cur_l.count)
        if written < 3:
            self._events[:0] = events[-MAX_EVENTS:]
        if written < 4:
            for dev, st in status.items():
                self._status[dev] = {**st, **self._status.get(dev, {})}
        if written < 5:
            for day_key, d in daily.items():
                now = self._daily.get(day_key)
                self._daily[day_key] = d if now is None else _Day(
                    d.count + now.count, _better(d.best_rssi, now.best_rssi), _better(d.best_snr, now.best_snr))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await self.flush()
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("final device state flush failed", error=str(exc))


def _describe(row: Any) -> str:
    """Which row was refused, for the log: its key, never its content."""
    key = row[0] if isinstance(row, tuple) else row
    return str(key)[:120]


async def _write_unknown(conn: asyncpg.Connection, rows: Sequence[tuple[tuple[str, str], _Unknown]]) -> None:
    await conn.execute(
        "INSERT INTO unknown_devices AS u (source, identifier, first_seen, last_seen, count, detail)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[],"
        " $5::bigint[], $6::jsonb[])"
        " ON CONFLICT (source, identifier) DO UPDATE SET last_seen = EXCLUDED.last_seen,"
        " count = u.count + EXCLUDED.count, detail = EXCLUDED.detail",
        [k[0] for k, _ in rows], [k[1] for k, _ in rows], [u.first_seen for _, u in rows],
        [u.last_seen for _, u in rows], [u.count for _, u in rows], [u.detail for _, u in rows],
    )


async def _write_latest(conn: asyncpg.Connection, rows: Sequence[tuple[str, _Latest]]) -> None:
    await conn.execute(
        "INSERT INTO device_state AS s (device_id, last_seen, last_f_cnt, last_message, message_count)"
        " SELECT x.* FROM unnest($1::uuid[], $2::timestamptz[], $3::bigint[], $4::jsonb[], $5::bigint[])"
        " AS x(device_id, last_seen, last_f_cnt, last_message, message_count)"
        " WHERE EXISTS (SELECT 1 FROM devices d WHERE d.id = x.device_id)"
        " ON CONFLICT (device_id) DO UPDATE SET last_seen = EXCLUDED.last_seen,"
        " last_f_cnt = EXCLUDED.last_f_cnt, last_message = EXCLUDED.last_message,"
        " message_count = s.message_count + EXCLUDED.message_count, updated_at = now()",
        [d for d, _ in rows], [lt.at for _, lt in rows], [lt.f_cnt for _, lt in rows],
        [lt.message for _, lt in rows], [lt.count for _, lt in rows],
    )


async def _write_events(conn: asyncpg.Connection, rows: Sequence[Event]) -> None:
    await conn.execute(
        "INSERT INTO device_events (device_id, event, at, detail)"
        " SELECT e.* FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::jsonb[])"
        " AS e(device_id, event, at, detail) WHERE EXISTS (SELECT 1 FROM devices d WHERE d.id = e.device_id)",
        [e[0] for e in rows], [e[1] for e in rows], [e[2] for e in rows], [e[3] for e in rows],
    )


async def _write_status(conn: asyncpg.Connection, rows: Sequence[tuple[str, dict[str, Any]]]) -> None:
    for device_id, st in rows:  # few: status/join/log events are rare next to uplinks
        await conn.execute(
            "INSERT INTO device_state AS s (device_id, battery_level, margin, external_power, joined_at, dev_addr,"
            " last_log) SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM devices WHERE id = $1)"
            " ON CONFLICT (device_id) DO UPDATE SET"
            " battery_level = COALESCE(EXCLUDED.battery_level, s.battery_level),"
            " margin = COALESCE(EXCLUDED.margin, s.margin),"
            " external_power = COALESCE(EXCLUDED.external_power, s.external_power),"
            " joined_at = COALESCE(EXCLUDED.joined_at, s.joined_at),"
            " dev_addr = COALESCE(EXCLUDED.dev_addr, s.dev_addr),"
            " last_log = COALESCE(EXCLUDED.last_log, s.last_log), updated_at = now()",
            device_id, st.get("battery_level"), st.get("margin"), st.get("external_power"),
            st.get("joined_at"), st.get("dev_addr"), st.get("last_log"),
        )


async def _write_daily(conn: asyncpg.Connection, rows: Sequence[tuple[tuple[str, date], _Day]]) -> None:
    await conn.execute(
        "INSERT INTO device_daily_stats AS s (device_id, day, count, best_rssi, best_snr)"
        " SELECT x.* FROM unnest($1::uuid[], $2::date[], $3::bigint[], $4::int[], $5::float8[])"
        " AS x(device_id, day, count, best_rssi, best_snr)"
        " WHERE EXISTS (SELECT 1 FROM devices d WHERE d.id = x.device_id)"
        " ON CONFLICT (device_id, day) DO UPDATE SET count = s.count + EXCLUDED.count,"
        " best_rssi = GREATEST(s.best_rssi, EXCLUDED.best_rssi),"
        " best_snr = GREATEST(s.best_snr, EXCLUDED.best_snr)",
        [k[0] for k, _ in rows], [k[1] for k, _ in rows], [d.count for _, d in rows],
        [d.best_rssi for _, d in rows], [d.best_snr for _, d in rows])
