"""Issue 15, item 5: OS2iot decoders get ``lorawanSettings`` in their device record, as OS2iot's
``enrichLoRaWANDevice`` gives it, with the battery level and margin ChirpStack last reported (from
``device_state`` at start-up, then from status events). Before, the service never passed it, and a
decoder reading ``metadata.lorawanSettings.deviceStatusBattery`` threw on every message.

Real parts in the last test: a private Mosquitto, PostgreSQL, the service with its JavaScript workers,
and a webhook consumer."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiomqtt
import pytest

from decoders.js import JsCodec
from decoders.js.os2iot import os2iot_metadata
from distributor.demo_feed import status_event, to_json, uplink_event
from distributor.js_codecs import DeviceStatuses
from distributor.service import Service
from distributor.settings import Settings
from registry import store
from registry.db import create_pool, migrate
from registry.installation import open_secret_box
from registry.js_store import upsert
from tests.support.broker import MosquittoBroker
from tests.support.receivers import Received, webhook
from tests.support.scenario import LOOPBACK, SECRET_KEY

BATTERY_DECODER = """
function decode(payload, metadata) {
  return {
    battery: metadata.lorawanSettings.deviceStatusBattery,
    margin: metadata.lorawanSettings.deviceStatusMargin,
    eui: metadata.lorawanSettings.devEUI,
    type: metadata.type,
    level: Buffer.from(payload.data, 'base64')[0]
  };
}
"""


def test_a_lorawan_device_always_has_lorawan_settings_and_never_its_keys() -> None:
    meta = os2iot_metadata({"name": "n", "type": "lorawan", "dev_eui": "a81758fffe0312ab"},
                           {"deviceInfo": {"deviceProfileId": "p-1", "deviceProfileName": "Elsys ERS"}})
    assert meta["type"] == "LORAWAN" and meta["deviceProfileName"] == "Elsys ERS"
    assert meta["lorawanSettings"] == {"devEUI": "a81758fffe0312ab", "deviceProfileID": "p-1", "isDisabled": False}
    given = {"type": "lorawan", "dev_eui": "a81758fffe0312ab", "battery_level": 55.5, "margin": 7,
             "lorawanSettings": {"OTAAapplicationKey": "00" * 16, "networkSessionKey": "11" * 16,
                                 "activationType": "OTAA"}}
    assert os2iot_metadata(given)["lorawanSettings"] == {
        "activationType": "OTAA", "devEUI": "a81758fffe0312ab", "isDisabled": False, "deviceStatusBattery": 55.5,
        "deviceStatusMargin": 7}
    assert "lorawanSettings" not in os2iot_metadata({"type": "http", "name": "h"})
    assert os2iot_metadata({"type": "nbiot"})["type"] == "GENERIC_HTTP"


def test_a_decoder_reading_the_battery_no_longer_throws_before_the_first_status() -> None:
    codec = JsCodec(BATTERY_DECODER)
    result = codec.decode(b"\x05", 1, device={"type": "lorawan", "dev_eui": "a81758fffe0312ab"})
    assert result.ok, result.errors
    assert result.data == {"eui": "a81758fffe0312ab", "type": "LORAWAN", "level": 5}  # battery unknown: undefined


def test_statuses_merge_reports_and_stay_bounded() -> None:
    statuses = DeviceStatuses(limit=2)
    statuses.note("a", 50.0, 7)
    statuses.note("a", None, 9)          # battery unavailable in this report: the last one stays
    statuses.note("b", 10.0, None)
    statuses.note("c", 20.0, 1)          # the oldest entry makes room
    assert statuses.get("a") == {} and statuses.get("b") == {"battery_level": 10.0}
    assert statuses.get("c") == {"battery_level": 20.0, "margin": 1} and len(statuses) == 2


@dataclass
class World:
    service: Service
    hook: Received
    broker: MosquittoBroker


KNOWN_EUI, NEW_EUI = "70b3d57ed0000001", "70b3d57ed0000002"


@pytest.fixture
async def world(broker: MosquittoBroker, database_url: str) -> AsyncIterator[World]:
    pool = await create_pool(database_url)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            box = await open_secret_box(conn, SECRET_KEY)
            await conn.execute("TRUNCATE organizations, unknown_devices, pending_deliveries CASCADE")
            await conn.execute("DELETE FROM js_decoders")
        async with webhook() as (hook_url, hook):
            async with pool.acquire() as conn:
                org = await store.create_organization(conn, f"Aarhus-{uuid.uuid4().hex[:6]}")
                app = await store.create_application(conn, org, "Water")
                await upsert(conn, decoder_id="os2iot-battery", organization_id=org, source=BATTERY_DECODER,
                             dialect="os2iot", examples=[])
                known, _ = await store.create_device(conn, box, application_id=app, name="known", dev_eui=KNOWN_EUI,
                                                  decoder="os2iot-battery")
                await store.create_device(conn, box, application_id=app, name="new", dev_eui=NEW_EUI,
                                          decoder="os2iot-battery")
                await conn.execute("INSERT INTO device_state (device_id, battery_level, margin) VALUES ($1, 55.5, 7)",
                                   uuid.UUID(str(known)))
                consumer = await store.create_consumer(conn, box, organization_id=org, name="hook", kind="http",
                                                       url=hook_url)
                await store.create_subscription(conn, consumer_id=consumer, application_id=app)
            settings = Settings(database_url=database_url, mqtt_url=broker.url, http_port=0, http_host="127.0.0.1",
                                secret_key=SECRET_KEY, mqtt_client_id=f"iotd-test-{uuid.uuid4().hex[:6]}",
                                consumer_allowed_networks=LOOPBACK, state_flush_interval_s=0.05, js_workers=1)
            service = Service(settings)
            await service.start()
            try:
                yield World(service, hook, broker)
            finally:
                await service.stop()
    finally:
        await pool.close()


async def publish(broker: MosquittoBroker, eui: str, kind: str, body: bytes) -> None:
    async with aiomqtt.Client("127.0.0.1", broker.port) as client:
        await client.publish(f"application/x/device/{eui}/event/{kind}", body, qos=1)


NAMES = {KNOWN_EUI: "known", NEW_EUI: "new"}


async def uplink_data(world: World, eui: str, f_cnt: int) -> dict[str, object]:
    """The decoded data of an uplink (``f_cnt`` also its one byte) as the webhook consumer got it."""
    def mine(m: dict[str, object]) -> bool:
        return m["network"]["f_cnt"] == f_cnt and m["device"]["name"] == NAMES[eui]  # type: ignore[index]

    await publish(world.broker, eui, "up", to_json(uplink_event(dev_eui=eui, data=bytes([f_cnt]), f_cnt=f_cnt)))
    await world.hook.wait_for(lambda bodies: any(mine(m) for m in bodies))
    (message,) = [m for m in world.hook.bodies if mine(m)]
    assert message["decoder"]["status"] == "ok", message["decoder"]
    data: dict[str, object] = message["payload"]["decoded"]
    return data


async def test_os2iot_decoders_read_the_battery_chirpstack_reported(world: World) -> None:
    assert await uplink_data(world, KNOWN_EUI, 1) == {"battery": 55.5, "margin": 7, "eui": KNOWN_EUI,
                                                      "type": "LORAWAN", "level": 1}   # from device_state
    assert await uplink_data(world, NEW_EUI, 2) == {"eui": NEW_EUI, "type": "LORAWAN", "level": 2}  # none known
    await publish(world.broker, NEW_EUI, "status", to_json(status_event(NEW_EUI, battery=80.0, margin=9)))
    for f_cnt in range(3, 50):   # the status event and the uplinks travel apart: wait until it was taken in
        data = await uplink_data(world, NEW_EUI, f_cnt)
        if "battery" in data:
            break
    assert data == {"battery": 80.0, "margin": 9, "eui": NEW_EUI, "type": "LORAWAN", "level": f_cnt}
