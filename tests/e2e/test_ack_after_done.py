"""The source acknowledges only when a message is done; a consumer outage spills; reconnects resubscribe.

Real parts: a Mosquitto per test, a fresh PostgreSQL database, webhooks started here.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import aiomqtt

from distributor.demo_feed import to_json, uplink_event
from distributor.service import Service
from distributor.settings import Settings
from registry import store
from registry.db import create_pool, migrate
from registry.installation import open_secret_box
from tests.support.broker import MosquittoBroker
from tests.support.database import create_database, drop_database
from tests.support.receivers import Received, webhook
from tests.support.scenario import LOOPBACK

KEY = "ack-test-secret-key-0123456789"
EUI = "a81758fffe0312ab"
FRAME = bytes.fromhex("0101170231")


async def start_service(broker: MosquittoBroker, hook_url: str) -> tuple[Service, str]:
    db = await create_database("iotd_ack")
    pool = await create_pool(db)
    async with pool.acquire() as conn:
        await migrate(conn)
        box = await open_secret_box(conn, KEY)
        org = await store.create_organization(conn, "o")
        app = await store.create_application(conn, org, "a")
        await store.create_device(conn, box, application_id=app, name="d", dev_eui=EUI, decoder="elsys")
        consumer = await store.create_consumer(conn, box, organization_id=org, name="hook", kind="http",
                                               url=hook_url, timeout_s=5)
        await store.create_subscription(conn, consumer_id=consumer, application_id=app)
    await pool.close()
    service = Service(Settings(database_url=db, mqtt_url=broker.url, http_port=0, http_host="127.0.0.1",
                               secret_key=KEY, mqtt_client_id=f"iotd-ack-{uuid.uuid4().hex[:6]}",
                               consumer_allowed_networks=LOOPBACK,
                               drain_timeout_s=2))
    await service.start()
    return service, db


async def publish(broker: MosquittoBroker, f_cnt: int) -> None:
    async with aiomqtt.Client("127.0.0.1", broker.port) as client:
        ev = uplink_event(dev_eui=EUI, data=FRAME, f_cnt=f_cnt)
        await client.publish(f"application/a/device/{EUI}/event/up", to_json(ev), qos=1)


async def until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_the_ack_waits_for_the_consumer(own_broker: MosquittoBroker) -> None:
    gate = asyncio.Event()
    async with webhook(gate=gate) as (url, got):
        service, db = await start_service(own_broker, url)
        try:
            assert service.source is not None
            await publish(own_broker, 1)
            await until(lambda: got.requests == 1)
            await asyncio.sleep(0.2)
            assert service.source.in_flight == 1  # delivered to nobody yet: not acked
            gate.set()
            await until(lambda: service.source is not None and service.source.in_flight == 0)
            assert len(got.bodies) == 1
        finally:
            gate.set()
            await service.stop()
            await drop_database(db)


async def test_a_failing_consumer_spills_durably_and_the_message_is_acked(own_broker: MosquittoBroker) -> None:
    async with webhook(status=lambda: 503) as (url, got):
        service, db = await start_service(own_broker, url)
        try:
            assert service.source is not None and service.pool is not None
            await publish(own_broker, 2)
            pool = service.pool
            rows: list[object] = []

            async def spilled() -> None:
                async with asyncio.timeout(10):
                    while not rows:
                        rows[:] = await pool.fetch("SELECT * FROM pending_deliveries")
                        await asyncio.sleep(0.05)

            await spilled()
            row = rows[0]
            assert row["last_status"] == 503 and row["attempts"] == 1  # type: ignore[index]
            await until(lambda: service.source is not None and service.source.in_flight == 0)
            assert got.bodies == []
        finally:
            await service.stop()
            await drop_database(db)


async def test_the_source_reconnects_and_resubscribes_after_a_broker_restart(own_broker: MosquittoBroker) -> None:
    async with webhook() as (url, got):
        service, db = await start_service(own_broker, url)
        try:
            assert service.source is not None
            own_broker.restart()
            await until(lambda: service.source is not None and service.source.connected, timeout=15)
            await publish(own_broker, 3)
            await got.wait_for(lambda b: len(b) == 1, timeout=15)
            assert got.bodies[0]["network"]["f_cnt"] == 3
        finally:
            await service.stop()
            await drop_database(db)


_ = Received
