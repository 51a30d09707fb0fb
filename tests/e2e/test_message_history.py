"""The message history (issue 17): what is acknowledged is stored; partitions are made ahead and dropped whole.

Real parts: PostgreSQL (a database per test), Mosquitto, ``iotd serve`` as a child process for the SIGKILL.
"""

from __future__ import annotations

import asyncio
import base64
import signal
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from decoders.contract import NUMBER
from distributor.ack import Finalizer
from distributor.history import MessageStore, row
from registry import store
from registry.db import create_pool, migrate
from registry.history_partitions import AHEAD_DAYS, maintain, partition_for, partitions
from registry.installation import open_secret_box
from registry.records import Device
from tests.support.broker import MosquittoBroker
from tests.support.receivers import topic_subscriber
from tests.support.scenario import FRAME, SECRET_KEY, ServiceProcess, provision, publish_all, settings, uplinks


async def http_device(db: str, retention_days: int = 30) -> tuple[str, str]:
    """(device id, ingest key) of an HTTP device in an application keeping ``retention_days``."""
    pool = await create_pool(db)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            box = await open_secret_box(conn, SECRET_KEY)
            org = await store.create_organization(conn, "o")
            app = await store.create_application(conn, org, "a")
            await conn.execute("UPDATE applications SET retention_days = $2 WHERE id = $1", app, retention_days)
            device, key = await store.create_device(conn, box, application_id=app, name="meter", kind="http")
            assert key is not None
            return device, key
    finally:
        await pool.close()


async def stored(db: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(db)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def test_every_acknowledged_message_is_stored_even_when_the_service_is_killed_right_after(
        broker: MosquittoBroker, db: str) -> None:
    _, key = await http_device(db)
    service = ServiceProcess(settings(db, broker, mqtt_url=None))
    service.start()
    accepted: list[str] = []
    blocker = await asyncpg.connect(db)
    try:
        await service.ready()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}", timeout=20) as client:
            async def send(k: int) -> None:
                r = await client.post("/ingest/http", content=orjson.dumps({"temperature": k / 10}),
                                      headers={"X-API-Key": key, "Idempotency-Key": f"m{k}"})
                if r.status_code == 202:
                    accepted.append(r.json()["id"])

            await asyncio.gather(*(send(k) for k in range(50)))
            assert len(accepted) == 50
            # the history cannot write now (a lock on the table): nothing may be acknowledged meanwhile
            transaction = blocker.transaction()
            await transaction.start()
            await blocker.execute("LOCK TABLE messages IN SHARE MODE")
            sending = [asyncio.create_task(send(k)) for k in range(50, 200)]
            await asyncio.sleep(1.5)
            assert len(accepted) == 50, "acknowledged before the history had it"
            await transaction.rollback()                    # writes go through; answers start coming
            while len(accepted) < 120:
                await asyncio.sleep(0.001)
            service.kill(signal.SIGKILL)                    # mid-stream: no drain, no last flush
            await asyncio.gather(*sending, return_exceptions=True)
    finally:
        await blocker.close()
        service.stop()
    ids = {str(r["id"]) for r in await stored(db, "SELECT id FROM messages")}
    assert set(accepted) <= ids, f"{len(set(accepted) - ids)} acknowledged messages missing from the history"


async def test_a_chirpstack_uplink_is_stored_as_delivered(broker: MosquittoBroker, db: str) -> None:
    topic = f"iotd-history/{db[-8:]}"
    consumer = {"kind": "mqtt", "url": f"mqtt://127.0.0.1:{broker.port}/{topic}/{{device}}", "qos": 1}
    tenant = await provision(db, {"out": consumer})
    service = ServiceProcess(settings(db, broker))
    service.start()
    try:
        await service.ready()
        sent = uplinks(5)
        async with topic_subscriber(broker.port, f"{topic}/#") as got:
            await publish_all(broker.port, [body for _, body in sent])
            async with asyncio.timeout(15):
                while len(got.bodies) < 5:
                    await asyncio.sleep(0.05)
        rows = await stored(db, "SELECT * FROM messages ORDER BY received_at")
    finally:
        service.kill(signal.SIGTERM)
        await service.wait()
    assert [str(r["id"]) for r in rows] == [message_id for message_id, _ in sent]
    delivered = {body["id"]: body for body in got.bodies}
    for r in rows:
        message = orjson.loads(r["body"])
        assert message == delivered[str(r["id"])]                 # what the consumer got
        assert str(r["device_id"]) == tenant.device and r["retention_days"] == 30
        assert r["payload"] == base64.b64decode(message["payload"]["raw"]) == FRAME
        numeric = [(m["name"], float(m["value"])) for m in message["measurements"]
                   if isinstance(m["value"], NUMBER) and not isinstance(m["value"], bool)]
        assert list(zip(r["names"], r["vals"], strict=True)) == numeric and numeric


async def test_an_application_keeping_nothing_stores_nothing(broker: MosquittoBroker, db: str) -> None:
    _, key = await http_device(db, retention_days=0)
    service = ServiceProcess(settings(db, broker, mqtt_url=None))
    service.start()
    try:
        await service.ready()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}", timeout=10) as client:
            r = await client.post("/ingest/http", content=b'{"temperature": 1}', headers={"X-API-Key": key})
            assert r.status_code == 202
    finally:
        service.kill(signal.SIGTERM)
        await service.wait()
    assert await stored(db, "SELECT id FROM messages") == []


async def test_partitions_are_made_ahead_and_dropped_whole_when_expired(db: str) -> None:
    pool = await create_pool(db)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            org = await store.create_organization(conn, "o")
            for name, days in (("short", 30), ("long", 400)):
                app = await store.create_application(conn, org, name)
                await conn.execute("UPDATE applications SET retention_days = $2 WHERE id = $1", app, days)
            start = datetime(2026, 11, 30, 12, tzinfo=UTC)
            made = await maintain(conn, start)
            today = start.date()
            wanted = {partition_for(r, today + timedelta(days=k)).name
                      for r in (30, 400) for k in range(AHEAD_DAYS + 1)}
            assert set(made.created) == wanted and made.dropped == []
            assert partition_for(400, today).end - partition_for(400, today).start == timedelta(days=7)
            again = await maintain(conn, start)                      # idempotent
            assert again.created == [] and again.dropped == []
            kept_row = await conn.fetchval("SELECT count(*) FROM pg_class WHERE relname = $1",
                                           partition_for(400, today).name)
            assert kept_row == 1
            later = await maintain(conn, start + timedelta(days=34))  # 30 days past the last day made ahead
            assert set(later.dropped) == {partition_for(30, today + timedelta(days=k)).name
                                          for k in range(AHEAD_DAYS + 1)}
            left = {p.name for p in await partitions(conn)}
            assert {partition_for(400, today + timedelta(days=k)).name for k in range(AHEAD_DAYS + 1)} <= left
    finally:
        await pool.close()


async def test_a_write_without_a_partition_makes_it(db: str) -> None:
    pool = await create_pool(db)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        history = MessageStore(pool)
        await history.start()
        fired: list[bool] = []
        finalizer = Finalizer(fired.append)
        device = Device(id="00000000-0000-0000-0000-000000000001",
                        application_id="00000000-0000-0000-0000-000000000002",
                        organization_id="00000000-0000-0000-0000-000000000003", name="d", kind="http", decoder=None)
        when = datetime(2031, 5, 17, 8, tzinfo=UTC).timestamp()     # a day and a class nobody made ahead
        history.add(row(7, when, "00000000-0000-0000-0000-0000000000aa", device, None, b"\x01",
                        b'{"id": "aa"}', [{"name": "temperature", "value": 2.5}, {"name": "door", "value": "open"}]),
                    finalizer)
        finalizer.release(True)
        async with asyncio.timeout(10):
            while not fired:
                await asyncio.sleep(0.01)
        await history.close()
        assert fired == [True]
        async with pool.acquire() as conn:
            got = await conn.fetchrow("SELECT names, vals, tableoid::regclass::text AS part FROM messages")
        assert got["names"] == ["temperature"] and got["vals"] == [2.5]
        assert got["part"] == partition_for(7, datetime.fromtimestamp(when, UTC).date()).name
    finally:
        await pool.close()


async def test_a_refused_row_or_a_lost_connection_costs_the_others_nothing(db: str) -> None:
    """The writer COPYs a batch in one statement on a connection of its own; a row PostgreSQL (or the encoder)
    refuses sends only that batch down the row-isolating path, and a connection killed under it is replaced."""
    pool = await create_pool(db)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            await maintain(conn)
        dropped: list[int] = []
        history = MessageStore(pool, on_dropped=dropped.append)
        await history.start()
        device = Device(id="00000000-0000-0000-0000-000000000001",
                        application_id="00000000-0000-0000-0000-000000000002",
                        organization_id="00000000-0000-0000-0000-000000000003", name="d", kind="http", decoder=None)
        now = datetime.now(UTC).timestamp()

        async def store(ids: list[int], f_port: int | None = 1) -> list[bool]:
            fired: list[bool] = []
            for k in ids:
                finalizer = Finalizer(fired.append)
                history.add(row(30, now, f"00000000-0000-0000-0000-{k:012x}", device, f_port if k != 3 else 2**40,
                                b"\x01", b"{}", []), finalizer)
                finalizer.release(True)
            async with asyncio.timeout(10):
                while len(fired) < len(ids):
                    await asyncio.sleep(0.01)
            return fired

        assert await store([1, 2, 3, 4]) == [True] * 4          # 3's f_port cannot be an integer column's
        assert dropped == [1]
        writer = await pool.fetchval("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                                     " AND pid <> pg_backend_pid() AND state = 'idle' ORDER BY backend_start LIMIT 1")
        await pool.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
                           " AND pid <> pg_backend_pid()")
        assert writer is not None
        await asyncio.sleep(0.5)     # the client notices the lost connection while idle (asyncpg detaches it)
        assert await store([5, 6]) == [True, True]
        await history.close()
        async with pool.acquire() as conn:
            stored = await conn.fetch("SELECT id FROM messages ORDER BY id")
        assert [str(r["id"])[-1] for r in stored] == ["1", "2", "4", "5", "6"]
    finally:
        await pool.close()


@pytest.mark.parametrize("name", ["nul\x00name", "x" * 5000])
def test_measurement_names_from_a_decoder_are_made_storable(name: str) -> None:
    device = Device(id="d", application_id="a", organization_id="o", name="d", kind="http", decoder=None)
    names = row(30, 0.0, "m", device, 1, b"", b"{}", [{"name": name, "value": 1}])[9]
    assert "\x00" not in names[0] and len(names[0]) <= 200
