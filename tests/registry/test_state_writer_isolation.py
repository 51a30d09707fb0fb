"""Device-state writes under poison values (issue 13, finding 3): one bad row used to fail every
flush for every tenant until restart. Now a refused row is dropped and counted, values from
outside are stored cleaned, and the next flushes keep working. Real PostgreSQL."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from registry.state_writer import MAX_UNKNOWN, StateWriter


@pytest.fixture
def pool(migrated_pool: asyncpg.Pool) -> asyncpg.Pool:
    return migrated_pool


async def device(pool: asyncpg.Pool) -> str:
    org = await pool.fetchval("INSERT INTO organizations (name) VALUES ($1) RETURNING id", f"o-{uuid.uuid4().hex}")
    app = await pool.fetchval("INSERT INTO applications (organization_id, name) VALUES ($1, 'a') RETURNING id", org)
    return str(await pool.fetchval(
        "INSERT INTO devices (application_id, name, kind) VALUES ($1, 'd', 'http') RETURNING id", app))


def message(note: str) -> dict[str, object]:
    return {"id": uuid.uuid4().hex, "payload": {"decoded": {"note": note}}, "network": {"radio": []}}


async def test_poison_values_never_stop_device_state_writes(pool: asyncpg.Pool) -> None:
    dropped: list[tuple[str, str, int]] = []
    writer = StateWriter(pool, on_dropped=lambda t, w, n: dropped.append((t, w, n)))
    a, b = await device(pool), await device(pool)
    ident = f"poison-{uuid.uuid4().hex}"
    writer.unknown_device("chirpstack-mqtt", ident + "\x00", {"device_name": "x\x00"})   # text column: refused
    writer.unknown_device("chirpstack-mqtt", ident, {"device_name": "bin\x00 7"})        # jsonb: stored cleaned
    writer.message(a, 1, message("from a JavaScript decoder \x00"))
    writer.message(b, 2, message("ok"))
    writer.event(a, "log", {"description": "nul \x00 in a log"}, {"last_log": {"description": "\x00"}})
    writer.event(b, "status\x00", {}, {"battery_level": 80.0})                            # text column: refused
    await writer.flush()
    assert dropped == [("unknown_devices", "refused", 1), ("device_events", "refused", 1)]
    detail = await pool.fetchval("SELECT detail FROM unknown_devices WHERE identifier = $1", ident)
    assert detail == {"device_name": "bin\ufffd 7"}
    latest = {str(r["device_id"]): r for r in await pool.fetch(
        "SELECT device_id, last_message, last_log, battery_level FROM device_state WHERE device_id = ANY($1::uuid[])",
        [a, b])}
    assert latest[a]["last_message"]["payload"]["decoded"]["note"] == "from a JavaScript decoder \ufffd"
    assert latest[a]["last_log"] == {"description": "\ufffd"} and latest[b]["battery_level"] == 80.0
    assert await pool.fetchval("SELECT detail FROM device_events WHERE device_id = $1", a) == {
        "description": "nul \ufffd in a log"}
    writer.message(b, 3, message("next flush"))
    await writer.flush()
    assert await pool.fetchval("SELECT last_f_cnt FROM device_state WHERE device_id = $1", b) == 3
    assert writer.flushes == 2


async def test_the_unknown_device_buffer_is_bounded(pool: asyncpg.Pool) -> None:
    writer = StateWriter(pool)
    for i in range(MAX_UNKNOWN + 5):
        writer.unknown_device("chirpstack-mqtt", f"{i:016x}", {})
    assert writer.dropped == 5
