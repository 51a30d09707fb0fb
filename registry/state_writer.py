"""Batched writes of what devices said: latest message, counters, status/join/log, unknown devices.

Nothing here is on the delivery guarantee's path: these are statistics and state, grouped
from many messages into one statement per table every ``interval_s`` (DESIGN.md: no
per-message database round trip).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import asyncpg
import structlog

from decoders.contract import NUMBER
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


def _better(a: N | None, b: N | None) -> N | None:
    return b if a is None else a if b is None else max(a, b)


class StateWriter:
    def __init__(self, pool: asyncpg.Pool, interval_s: float = 0.5) -> None:
        self._pool = pool
        self._interval_s = interval_s
        self._unknown: dict[tuple[str, str], _Unknown] = {}
        self._latest: dict[str, _Latest] = {}
        self._events: list[tuple[str, str, datetime, dict[str, Any]]] = []
        self._status: dict[str, dict[str, Any]] = {}
        self._daily: dict[tuple[str, date], _Day] = {}
        self._task: asyncio.Task[None] | None = None
        self.flushes = 0

    # --- called from the hot path: dict updates only -------------------------------------
    def unknown_device(self, source: str, identifier: str, detail: dict[str, Any]) -> None:
        now = datetime.now(UTC)
        entry = self._unknown.get((source, identifier))
        if entry is None:
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
        if not (unknown or latest or events or status):
            return
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await self._write(conn, unknown, latest, events, status)
                await self._write_daily(conn, daily)
        except BaseException:
            self._restore(unknown, latest, events, status)
            for key, d in daily.items():
                cur = self._daily.get(key)
                self._daily[key] = d if cur is None else _Day(d.count + cur.count,
                                                              _better(d.best_rssi, cur.best_rssi),
                                                              _better(d.best_snr, cur.best_snr))
            raise
        self.flushes += 1

    def _restore(self, unknown: dict[tuple[str, str], _Unknown], latest: dict[str, _Latest],
                 events: list[tuple[str, str, datetime, dict[str, Any]]], status: dict[str, dict[str, Any]]) -> None:
        for key, u in unknown.items():
            cur = self._unknown.get(key)
            self._unknown[key] = u if cur is None else _Unknown(u.first_seen, cur.last_seen, u.count + cur.count,
                                                                  cur.detail)
        for dev, lt in latest.items():
            cur_l = self._latest.get(dev)
            self._latest[dev] = lt if cur_l is None else _Latest(cur_l.at, cur_l.f_cnt, cur_l.message,
                                                                  lt.count + cur_l.count)
        self._events[:0] = events
        for dev, st in status.items():
            self._status[dev] = {**st, **self._status.get(dev, {})}

    @staticmethod
    async def _write(conn: asyncpg.Connection, unknown: dict[tuple[str, str], _Unknown],
                     latest: dict[str, _Latest], events: list[tuple[str, str, datetime, dict[str, Any]]],
                     status: dict[str, dict[str, Any]]) -> None:
        if unknown:
            keys = list(unknown)
            await conn.execute(
                "INSERT INTO unknown_devices AS u (source, identifier, first_seen, last_seen, count, detail)"
                " SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[],"
                " $5::bigint[], $6::jsonb[])"
                " ON CONFLICT (source, identifier) DO UPDATE SET last_seen = EXCLUDED.last_seen,"
                " count = u.count + EXCLUDED.count, detail = EXCLUDED.detail",
                [k[0] for k in keys], [k[1] for k in keys], [unknown[k].first_seen for k in keys],
                [unknown[k].last_seen for k in keys], [unknown[k].count for k in keys],
                [unknown[k].detail for k in keys],
            )
        if latest:
            ids = list(latest)
            await conn.execute(
                "INSERT INTO device_state AS s (device_id, last_seen, last_f_cnt, last_message, message_count)"
                " SELECT x.* FROM unnest($1::uuid[], $2::timestamptz[], $3::bigint[], $4::jsonb[], $5::bigint[])"
                " AS x(device_id, last_seen, last_f_cnt, last_message, message_count)"
                " WHERE EXISTS (SELECT 1 FROM devices d WHERE d.id = x.device_id)"
                " ON CONFLICT (device_id) DO UPDATE SET last_seen = EXCLUDED.last_seen,"
                " last_f_cnt = EXCLUDED.last_f_cnt, last_message = EXCLUDED.last_message,"
                " message_count = s.message_count + EXCLUDED.message_count, updated_at = now()",
                ids, [latest[i].at for i in ids], [latest[i].f_cnt for i in ids],
                [latest[i].message for i in ids], [latest[i].count for i in ids],
            )
        if events:
            await conn.execute(
                "INSERT INTO device_events (device_id, event, at, detail)"
                " SELECT e.* FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::jsonb[])"
                " AS e(device_id, event, at, detail) WHERE EXISTS (SELECT 1 FROM devices d WHERE d.id = e.device_id)",
                [e[0] for e in events], [e[1] for e in events], [e[2] for e in events], [e[3] for e in events],
            )
        for device_id, st in status.items():  # few: status/join/log events are rare next to uplinks
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

    @staticmethod
    async def _write_daily(conn: asyncpg.Connection, daily: dict[tuple[str, date], _Day]) -> None:
        if not daily:
            return
        keys = list(daily)
        await conn.execute(
            "INSERT INTO device_daily_stats AS s (device_id, day, count, best_rssi, best_snr)"
            " SELECT x.* FROM unnest($1::uuid[], $2::date[], $3::bigint[], $4::int[], $5::float8[])"
            " AS x(device_id, day, count, best_rssi, best_snr)"
            " WHERE EXISTS (SELECT 1 FROM devices d WHERE d.id = x.device_id)"
            " ON CONFLICT (device_id, day) DO UPDATE SET count = s.count + EXCLUDED.count,"
            " best_rssi = GREATEST(s.best_rssi, EXCLUDED.best_rssi),"
            " best_snr = GREATEST(s.best_snr, EXCLUDED.best_snr)",
            [k[0] for k in keys], [k[1] for k in keys], [daily[k].count for k in keys],
            [daily[k].best_rssi for k in keys], [daily[k].best_snr for k in keys])

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await self.flush()
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("final device state flush failed", error=str(exc))
