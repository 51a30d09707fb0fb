"""Issue path for IT teams: everything created through the REST API only, then an NB-IoT payload
through /ingest/http and a ChirpStack uplink through Mosquitto both reach an MQTT consumer decoded.

Real parts: the service over HTTP, a private Mosquitto, PostgreSQL, chirpstack-api events.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiomqtt
import httpx
import pytest

from distributor.demo_feed import to_json, uplink_event
from tests.support.api import Api, running_api
from tests.support.broker import MosquittoBroker
from tests.support.database import create_database, drop_database
from tests.support.receivers import topic_subscriber, webhook

ELSYS_FRAME = bytes.fromhex("0101170231" "04008b" "0508" "070e3d")
IMEI = "490154203237518"


@pytest.fixture
async def api(broker: MosquittoBroker) -> AsyncIterator[Api]:
    url = await create_database("iotd_apipath")
    async with running_api(url, broker) as a:
        yield a
    await drop_database(url)


async def test_created_through_the_api_then_both_networks_reach_an_mqtt_consumer(api: Api,
                                                                                broker: MosquittoBroker) -> None:
    org = (await api.create("organizations", {"name": "Aarhus"}))["id"]
    app = (await api.create("applications", {"organization_id": org, "name": "Water"}))["id"]
    await api.create("devices", {"application_id": app, "name": "classroom", "kind": "lorawan",
                                 "dev_eui": "a81758fffe0312ab", "decoder": "elsys"})
    meter = await api.create("devices", {"application_id": app, "name": "well-3", "kind": "nbiot", "imei": IMEI,
                                         "decoder": "json"})
    consumer = (await api.create("consumers", {"organization_id": org, "name": "dept", "kind": "mqtt",
                                               "url": f"mqtt://127.0.0.1:{broker.port}/city/{{device_name}}",
                                               "format": "native"}))["id"]
    await api.create("subscriptions", {"consumer_id": consumer, "application_id": app})
    await routed(api, meter["id"])

    async with topic_subscriber(broker.port, "city/#") as got:
        async with httpx.AsyncClient(base_url=api.base_url) as device:
            r = await device.post("/ingest/http", content=b'{"temperature": 8.5, "water_level": 1.25}',
                                  headers={"Authorization": f"ApiKey {meter['ingest_key']}",
                                           "Content-Type": "application/json"})
            assert r.status_code == 202, r.text
            nbiot_id = r.json()["id"]
        async with aiomqtt.Client("127.0.0.1", broker.port) as chirpstack:
            ev = uplink_event(dev_eui="a81758fffe0312ab", data=ELSYS_FRAME, f_cnt=7)
            await chirpstack.publish("application/x/device/a81758fffe0312ab/event/up", to_json(ev), qos=1)
        await got.wait_for(lambda b: len(b) >= 2, timeout=10)

    by_device = {b["device"]["name"]: b for b in got.bodies}
    well = by_device["well-3"]
    assert well["id"] == nbiot_id and well["network"] == {**well["network"], "kind": "nbiot", "imei": IMEI}
    assert {(m["name"], m["value"]) for m in well["measurements"]} == {("temperature", 8.5), ("water_level", 1.25)}
    room = by_device["classroom"]
    assert {"name": "temperature", "unit": "Cel", "value": 27.9} in room["measurements"]
    assert sorted(got.topics) == ["city/classroom", "city/well-3"]

    # what IT sees afterwards: the latest message and the day's statistics (written in batches)
    room_id = room["device"]["id"]
    async with asyncio.timeout(5):
        while (latest := (await api.client.get(f"/api/v1/devices/{room_id}/latest")).json())["message"] is None:
            await asyncio.sleep(0.1)
    assert latest["message"]["id"] == room["id"] and latest["last_f_cnt"] == 7
    stats = (await api.client.get(f"/api/v1/devices/{room_id}/stats")).json()
    expected_rssi = max(r["rssi"] for r in room["network"]["radio"])
    assert stats["message_count"] == 1 and stats["days"][0]["count"] == 1 and stats["best_rssi"] == expected_rssi


@pytest.mark.parametrize(("content_type", "body", "how"), [
    ("application/octet-stream", b'{"temperature": 1}', "header"),
    ("text/plain", b'{"temperature": 1}'.hex().encode(), "x-api-key"),
    ("application/json", b'{"data": "eyJ0ZW1wZXJhdHVyZSI6IDF9"}', "query"),
])
async def test_ingest_accepts_raw_hex_base64_and_every_key_form(api: Api, content_type: str, body: bytes,
                                                                how: str) -> None:
    org = (await api.create("organizations", {"name": f"o-{how}"}))["id"]
    app = (await api.create("applications", {"organization_id": org, "name": "a"}))["id"]
    dev = await api.create("devices", {"application_id": app, "name": "d", "kind": "http", "decoder": "json"})
    async with webhook() as (url, got):
        consumer = (await api.create("consumers", {"organization_id": org, "name": "c", "kind": "http",
                                                   "url": url}))["id"]
        await api.create("subscriptions", {"consumer_id": consumer, "application_id": app})
        await routed(api, dev["id"])
        key = dev["ingest_key"]
        headers = {"Content-Type": content_type}
        params = {}
        if how == "header":
            headers["Authorization"] = f"ApiKey {key}"
        elif how == "x-api-key":
            headers["X-API-Key"] = key
        else:
            params["apiKey"] = key
        async with httpx.AsyncClient(base_url=api.base_url) as device:
            r = await device.post("/ingest/http", content=body, headers=headers, params=params)
            assert r.status_code == 202, r.text
            # answered only when done: the consumer already has it
            assert [b["id"] for b in got.bodies] == [r.json()["id"]]
            assert got.bodies[0]["measurements"] == [{"name": "temperature", "unit": "Cel", "value": 1}]


async def test_ingest_refuses_bad_keys_and_bodies_clearly(api: Api) -> None:
    org = (await api.create("organizations", {"name": "refusals"}))["id"]
    app = (await api.create("applications", {"organization_id": org, "name": "a"}))["id"]
    dev = await api.create("devices", {"application_id": app, "name": "d", "kind": "http", "decoder": "json"})
    async with asyncio.timeout(2):
        while dev["id"] not in api.service.cache.snapshot.devices:
            await asyncio.sleep(0.02)
    async with httpx.AsyncClient(base_url=api.base_url) as device:
        r = await device.post("/ingest/http", content=b"\x01")
        assert r.status_code == 401 and "ingest key" in r.json()["error"]
        r = await device.post("/ingest/http", content=b"\x01", headers={"X-API-Key": "iotd_ik_wrong"})
        assert r.status_code == 401
        auth = {"X-API-Key": dev["ingest_key"]}
        r = await device.post("/ingest/http", content=b"zz-not-hex!", headers={**auth, "Content-Type": "text/plain"})
        assert r.status_code == 400 and "hex or base64" in r.json()["error"]
        r = await device.post("/ingest/http", content=b"{broken", headers={**auth, "Content-Type": "application/json"})
        assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
        r = await device.post("/ingest/http", content=b"\x01", headers={**auth, "Idempotency-Key": "k" * 201})
        assert r.status_code == 400 and "longer than 200" in r.json()["error"]
        rotated = (await api.client.post(f"/api/v1/devices/{dev['id']}/rotate-ingest-key")).json()["ingest_key"]
        async with asyncio.timeout(2):
            while api.service.cache.snapshot.by_ingest_key.get(_hash(dev["ingest_key"])) is not None:
                await asyncio.sleep(0.02)
        assert (await device.post("/ingest/http", content=b"{}", headers=auth)).status_code == 401
        ok = await device.post("/ingest/http", content=b"{}", headers={"X-API-Key": rotated})
        assert ok.status_code == 202


async def routed(api: Api, device_id: str) -> None:
    """Wait until the running distributor routes the device to a consumer (live configuration)."""
    async with asyncio.timeout(2):
        while True:
            snap = api.service.cache.snapshot
            device = snap.devices.get(device_id)
            if device is not None and snap.consumers_for(device) and all(
                    c.id in api.service.dispatcher.lanes for c in snap.consumers_for(device)):
                return
            await asyncio.sleep(0.02)


def _hash(key: str) -> str:
    from registry.secrets import hash_token

    return hash_token(key)


async def test_http_intake_waits_when_full_instead_of_refusing(broker: MosquittoBroker) -> None:
    url = await create_database("iotd_backpressure")
    gate = asyncio.Event()
    try:
        async with running_api(url, http_max_in_flight=1) as api, webhook(gate=gate) as (hook_url, got):
            org = (await api.create("organizations", {"name": "bp"}))["id"]
            app = (await api.create("applications", {"organization_id": org, "name": "a"}))["id"]
            dev = await api.create("devices", {"application_id": app, "name": "d", "kind": "http", "decoder": "json"})
            consumer = (await api.create("consumers", {"organization_id": org, "name": "c", "kind": "http",
                                                       "url": hook_url, "timeout_s": 30}))["id"]
            await api.create("subscriptions", {"consumer_id": consumer, "application_id": app})
            await routed(api, dev["id"])
            async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as device:
                sends = [asyncio.ensure_future(device.post("/ingest/http", content=b'{"n": %d}' % i,
                                                           headers={"X-API-Key": dev["ingest_key"]}))
                         for i in range(2)]
                async with asyncio.timeout(5):
                    while got.requests < 1:
                        await asyncio.sleep(0.02)
                await asyncio.sleep(0.3)
                assert got.requests == 1 and not any(s.done() for s in sends)  # the second waits for a slot
                gate.set()
                answers = await asyncio.gather(*sends)
            assert [a.status_code for a in answers] == [202, 202]
            assert sorted(b["payload"]["decoded"]["n"] for b in got.bodies) == [0, 1]
    finally:
        await drop_database(url)
