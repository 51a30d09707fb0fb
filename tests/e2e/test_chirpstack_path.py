"""Foundation end to end: a ChirpStack uplink on real Mosquitto reaches two consumers, decoded.

Real parts: a private Mosquitto, a fresh PostgreSQL database, an HTTP server and an MQTT
subscriber started here, events built with chirpstack-api's protobufs.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiomqtt
import asyncpg
import httpx
import pytest

from distributor.demo_feed import status_event, to_json, uplink_event
from distributor.model import Message
from distributor.service import Service
from distributor.settings import Settings
from distributor.sinks.http import verify
from registry import store
from registry.db import create_pool, migrate
from registry.installation import open_secret_box
from tests.support.broker import MosquittoBroker
from tests.support.receivers import Received, topic_subscriber, webhook
from tests.support.scenario import LOOPBACK, SECRET_KEY  # one key per database: the session's is shared

CHIRPSTACK_TOKEN = "chirpstack-http-integration-token-0123"
ELSYS_EUI = "a81758fffe0312ab"
REFERENCE_FRAME = bytes.fromhex("0101170231" "04008b" "0508" "070e3d")


@dataclass
class World:
    service: Service
    hook: Received
    topic: Received
    broker: MosquittoBroker
    pool: asyncpg.Pool


@pytest.fixture
async def world(broker: MosquittoBroker, database_url: str) -> AsyncIterator[World]:
    pool = await create_pool(database_url)
    async with pool.acquire() as conn:
        await migrate(conn)
        box = await open_secret_box(conn, SECRET_KEY)
        await conn.execute("TRUNCATE organizations, unknown_devices, pending_deliveries CASCADE")
    async with webhook() as (hook_url, hook), topic_subscriber(broker.port, "iotd/#") as topic:
        async with pool.acquire() as conn:
            org = await store.create_organization(conn, f"Aarhus-{uuid.uuid4().hex[:6]}")
            app = await store.create_application(conn, org, "Schools")
            await store.create_device(conn, box, application_id=app, name="classroom-1", dev_eui=ELSYS_EUI,
                                      decoder="elsys", tags={"floor": "2"}, lat=56.15, lon=10.2)
            http_c = await store.create_consumer(conn, box, organization_id=org, name="hook", kind="http",
                                                 url=hook_url, secret="s3cret-signing")
            mqtt_c = await store.create_consumer(conn, box, organization_id=org, name="topic", kind="mqtt",
                                                 url=f"mqtt://127.0.0.1:{broker.port}/iotd/{{organization}}/"
                                                     "{application}/{device}")
            await store.create_subscription(conn, consumer_id=http_c, application_id=app)
            await store.create_subscription(conn, consumer_id=mqtt_c, application_id=app)
        settings = Settings(database_url=database_url, mqtt_url=broker.url, http_port=0, http_host="127.0.0.1",
                            secret_key=SECRET_KEY, mqtt_client_id=f"iotd-test-{uuid.uuid4().hex[:6]}",
                            consumer_allowed_networks=LOOPBACK,
                            state_flush_interval_s=0.05, chirpstack_http_token=CHIRPSTACK_TOKEN)
        service = Service(settings)
        await service.start()
        try:
            yield World(service, hook, topic, broker, pool)
        finally:
            await service.stop()
            await pool.close()


async def publish(broker: MosquittoBroker, topic: str, body: bytes) -> None:
    async with aiomqtt.Client("127.0.0.1", broker.port) as client:
        await client.publish(topic, body, qos=1)


def measurement(message: dict[str, object], name: str) -> tuple[object, object]:
    found = [m for m in message["measurements"] if m["name"] == name]  # type: ignore[attr-defined]
    assert found, f"no {name} in {message['measurements']}"
    return found[0]["value"], found[0]["unit"]


@pytest.mark.parametrize("marshaler", ["json", "protobuf"])
async def test_uplink_reaches_both_consumers_decoded(world: World, marshaler: str) -> None:
    ev = uplink_event(dev_eui=ELSYS_EUI, data=REFERENCE_FRAME, f_cnt=42, f_port=5)
    body = to_json(ev) if marshaler == "json" else ev.SerializeToString()
    await publish(world.broker, f"application/x/device/{ELSYS_EUI}/event/up", body)

    await world.hook.wait_for(lambda b: len(b) >= 1)
    await world.topic.wait_for(lambda b: len(b) >= 1)
    for message in (world.hook.bodies[0], world.topic.bodies[0]):
        Message.model_validate(message)  # conforms to iotd.message/1
        assert measurement(message, "temperature") == (27.9, "Cel")
        assert measurement(message, "humidity") == (49, "%RH")
        assert message["decoder"]["status"] == "ok"
        assert message["network"]["f_cnt"] == 42
        assert message["network"]["dedup_id"] == ev.deduplication_id
        assert message["device"]["tags"] == {"floor": "2"}
    assert world.hook.bodies[0]["id"] == world.topic.bodies[0]["id"]
    headers = world.hook.headers[0]
    assert verify("s3cret-signing", int(headers["X-Iotd-Timestamp"]), world.hook.raw[0], headers["X-Iotd-Signature"])
    _, app, dev = world.topic.topics[0].split("/")[1:]
    assert dev == world.hook.bodies[0]["device"]["id"] and app == world.hook.bodies[0]["device"]["application"]


async def test_a_redelivered_event_keeps_its_id_and_is_delivered_once(world: World) -> None:
    ev = uplink_event(dev_eui=ELSYS_EUI, data=REFERENCE_FRAME, f_cnt=7)
    for _ in range(2):
        await publish(world.broker, f"application/x/device/{ELSYS_EUI}/event/up", to_json(ev))
    marker = uplink_event(dev_eui=ELSYS_EUI, data=REFERENCE_FRAME, f_cnt=8)
    await publish(world.broker, f"application/x/device/{ELSYS_EUI}/event/up", to_json(marker))
    await world.hook.wait_for(lambda b: any(m["network"]["f_cnt"] == 8 for m in b))
    assert [m["network"]["f_cnt"] for m in world.hook.bodies] == [7, 8]
    metrics = world.service.metrics.render().decode()
    assert 'iotd_duplicates_total{source="chirpstack-mqtt"} 1.0' in metrics


async def test_decoder_error_still_delivers_raw_payload(world: World) -> None:
    ev = uplink_event(dev_eui=ELSYS_EUI, data=b"\x99\x01", f_cnt=9)
    await publish(world.broker, f"application/x/device/{ELSYS_EUI}/event/up", to_json(ev))
    await world.hook.wait_for(lambda b: len(b) >= 1)
    message = world.hook.bodies[0]
    assert message["decoder"]["status"] == "error"
    assert "unknown field type 0x99" in message["decoder"]["errors"][0]
    assert message["payload"]["raw"] == "mQE="
    assert message["measurements"] == []
    assert 'iotd_decoded_total{decoder="elsys",status="error"} 1.0' in world.service.metrics.render().decode()


async def test_unknown_device_is_counted_and_listed(world: World) -> None:
    stranger = "70b3d57ed0001234"
    for f_cnt in (1, 2):
        ev = uplink_event(dev_eui=stranger, data=b"\x01", f_cnt=f_cnt, device_name="who-am-i")
        await publish(world.broker, f"application/x/device/{stranger}/event/up", to_json(ev))
    async with __import__("asyncio").timeout(10):
        while True:
            row = await world.pool.fetchrow("SELECT * FROM unknown_devices WHERE identifier = $1", stranger)
            if row is not None and row["count"] == 2:
                break
            await __import__("asyncio").sleep(0.05)
    assert row["detail"]["device_name"] == "who-am-i"
    assert row["first_seen"] <= row["last_seen"]
    assert world.hook.bodies == []


async def test_malformed_event_is_counted_and_the_source_keeps_going(world: World) -> None:
    await publish(world.broker, f"application/x/device/{ELSYS_EUI}/event/up", b"{definitely not json")
    await publish(world.broker, f"application/x/device/{ELSYS_EUI}/event/up", b"\xff\x00garbage")
    ev = uplink_event(dev_eui=ELSYS_EUI, data=REFERENCE_FRAME, f_cnt=11)
    await publish(world.broker, f"application/x/device/{ELSYS_EUI}/event/up", to_json(ev))
    await world.hook.wait_for(lambda b: len(b) >= 1)
    assert 'iotd_malformed_total{source="chirpstack-mqtt"} 2.0' in world.service.metrics.render().decode()


async def test_status_event_updates_device_state_not_consumers(world: World) -> None:
    await publish(world.broker, f"application/x/device/{ELSYS_EUI}/event/status",
                  to_json(status_event(ELSYS_EUI, battery=55.5, margin=7)))
    async with __import__("asyncio").timeout(10):
        while True:
            row = await world.pool.fetchrow(
                "SELECT s.* FROM device_state s JOIN devices d ON d.id = s.device_id WHERE d.dev_eui = $1", ELSYS_EUI)
            if row is not None and row["battery_level"] is not None:
                break
            await __import__("asyncio").sleep(0.05)
    assert row["battery_level"] == 55.5 and row["margin"] == 7
    assert world.hook.bodies == []


async def test_http_integration_endpoint_accepts_json_and_protobuf(world: World) -> None:
    base = f"http://127.0.0.1:{world.service.http_port}"
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {CHIRPSTACK_TOKEN}"}) as client:
        ev = uplink_event(dev_eui=ELSYS_EUI, data=REFERENCE_FRAME, f_cnt=21)
        r = await client.post("/ingest/chirpstack?event=up", content=to_json(ev),
                              headers={"content-type": "application/json"})
        assert r.status_code == 200, r.text
        ev2 = uplink_event(dev_eui=ELSYS_EUI, data=REFERENCE_FRAME, f_cnt=22)
        r2 = await client.post("/ingest/chirpstack?event=up", content=ev2.SerializeToString(),
                               headers={"content-type": "application/octet-stream"})
        assert r2.status_code == 200, r2.text
        bad = await client.post("/ingest/chirpstack?event=up", content=b"{nope",
                                headers={"content-type": "application/json"})
        assert bad.status_code == 400 and "not a ChirpStack" in bad.json()["error"]
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
        metrics = await client.get("/metrics")
    assert health.status_code == 200 and ready.json()["ready"] is True
    # answered only when done: both are already at the consumer
    assert {m["network"]["f_cnt"] for m in world.hook.bodies} >= {21, 22}
    assert r.json()["id"] == next(m["id"] for m in world.hook.bodies if m["network"]["f_cnt"] == 21)
    assert "iotd_end_to_end_latency_seconds_bucket" in metrics.text
