"""Poison input through the entry points while another tenant keeps flowing (issue 13, findings 1 and 3).

Before: one consumer answering 400 with a NUL byte in its body jammed the shared spill store (every
later spill of every tenant queued behind it, ingest was never answered, SIGTERM never exited), and
one NUL (or an oversize identifier) in an event, a log description or a JSON payload stopped every
device-state write until restart. Each case here sends the poison from tenant A (or from nowhere),
then checks that tenant B's uplinks and ingest still arrive, that B's state is still written, and
that the service stops cleanly.

Real parts: `iotd` in-process with its HTTP API, a private Mosquitto, PostgreSQL, HTTP receivers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiomqtt
import httpx
import orjson
import pytest

from distributor.demo_feed import to_json, uplink_event
from tests.support.api import Api, running_api
from tests.support.broker import MosquittoBroker
from tests.support.database import create_database, drop_database
from tests.support.receivers import webhook
from tests.support.scenario import FAST_RETRIES, FRAME

EUI_A, EUI_B = "a81758fffe031200", "a81758fffe0312bb"


TOKEN = "iotd_it_poison-test-integration-token"
POISON_CODEC = """function decodeUplink(input) {
  var big = ''; for (var i = 0; i < 1000; i++) big += 'x';
  return {data: {note: 'nul \\u0000 from a decoder', lone: '\\ud800', temperature: input.bytes[0], big: big}};
}"""


@pytest.fixture
async def api(broker: MosquittoBroker) -> AsyncIterator[Api]:
    url = await create_database("iotd_poison")
    async with running_api(url, broker, state_flush_interval_s=0.05, chirpstack_http_token=TOKEN,
                           auth_failure_limit=10_000, **FAST_RETRIES) as a:
        yield a
    await drop_database(url)


async def until(check: Callable[[], Any], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


async def tenant(api: Api, name: str, hook_url: str, eui: str) -> dict[str, Any]:
    org = (await api.create("organizations", {"name": name}))["id"]
    app = (await api.create("applications", {"organization_id": org, "name": "app"}))["id"]
    lora = await api.create("devices", {"application_id": app, "name": f"{name}-lora", "kind": "lorawan",
                                        "dev_eui": eui, "decoder": "elsys"})
    http = await api.create("devices", {"application_id": app, "name": f"{name}-http", "kind": "http",
                                        "decoder": "json"})
    hook = await api.create("consumers", {"organization_id": org, "name": "hook", "kind": "http", "url": hook_url})
    await api.create("subscriptions", {"consumer_id": hook["id"], "application_id": app})
    await until(lambda: hook["id"] in api.service.dispatcher.lanes and http["id"] in api.service.cache.snapshot.devices)
    return {"org": org, "lora": lora, "http": http, "hook": hook["id"]}


async def publish(broker: MosquittoBroker, items: list[tuple[str, bytes]]) -> None:
    async with aiomqtt.Client("127.0.0.1", broker.port) as client:
        for topic, body in items:
            await client.publish(topic, body, qos=1)


def up(eui: str, f_cnt: int) -> tuple[str, bytes]:
    return f"application/x/device/{eui}/event/up", to_json(uplink_event(dev_eui=eui, data=FRAME, f_cnt=f_cnt))


def raw_event(eui_field: object, event: str = "up", **extra: object) -> tuple[str, bytes]:
    doc = {"deduplicationId": "6b2f1e4e-0000-4000-8000-000000000001", "deviceInfo": {"devEui": eui_field}, **extra}
    return f"application/x/device/ffffffffffffffff/event/{event}", orjson.dumps(doc)


async def test_poison_from_one_tenant_never_stops_another(api: Api, broker: MosquittoBroker) -> None:
    async with webhook(status=lambda: 400, refusal=b"bad field \x00 in \xff\xfe body" + b"x" * 5000) as (a_url, _), \
            webhook() as (b_url, b_got):
        a = await tenant(api, "tenant-a", a_url, EUI_A)
        b = await tenant(api, "tenant-b", b_url, EUI_B)
        pool = api.service.pool
        assert pool is not None
        # finding 1: A's consumer refuses with NUL and invalid UTF-8 in its answer -> a dead letter, cleaned
        await publish(broker, [up(EUI_A, 1)])
        await until(lambda: api.service.spill.rows_written >= 1)
        # finding 3: NUL and oversize values in events, identifiers, a log description and a JSON payload
        await publish(broker, [
            raw_event("a81758fffe0312\u0000\u0000"),                        # devEui with NUL: malformed
            raw_event("ab" * 50_000),                                         # a 100 KB devEui: malformed
            raw_event(EUI_B, "log", description="nul \u0000 in a log", level="ERROR"),
            (f"application/x/device/{EUI_B}/event/up", to_json(uplink_event(
                dev_eui="ffffffffffff0001", data=FRAME, f_cnt=1, device_name="unknown \u0000 device"))),
        ])
        async with httpx.AsyncClient(base_url=api.base_url) as device:
            r = await device.post("/ingest/http", content=b'{"note": "nul \\u0000 here", "temperature": 5}',
                                  headers={"X-API-Key": b["http"]["ingest_key"], "Content-Type": "application/json"})
            assert r.status_code == 202, r.text
            # B keeps flowing: uplinks over MQTT and ingest over HTTP, answered and delivered
            await publish(broker, [up(EUI_B, 10 + i) for i in range(20)])
            r = await device.post("/ingest/http", content=b'{"temperature": 6}',
                                  headers={"X-API-Key": b["http"]["ingest_key"], "Content-Type": "application/json"})
            assert r.status_code == 202, r.text
        try:
            await b_got.wait_for(lambda bodies: len(bodies) >= 22, timeout=15)
        except TimeoutError:
            dead = await pool.fetch("SELECT message_id, last_error, reason FROM dead_letters")
            pending = await pool.fetch("SELECT message_id, last_error, attempts FROM pending_deliveries")
            raise AssertionError(f"B got {len(b_got.bodies)} of 22; dead letters {[dict(r) for r in dead]};"
                                 f" pending {[dict(r) for r in pending]}") from None
        assert sum(1 for body in b_got.bodies if body["device"]["id"] == b["lora"]["id"]) == 20
        # B's device state is written (latest message, the log event), the unknown device is listed, cleaned
        await until(lambda: api.service.state.flushes > 0, timeout=5)

        async def state_written() -> bool:
            last = await pool.fetchval("SELECT last_f_cnt FROM device_state WHERE device_id = $1", b["lora"]["id"])
            return bool(last == 29)

        async with asyncio.timeout(5):
            while not await state_written():
                await asyncio.sleep(0.05)
        log_detail = await pool.fetchval("SELECT detail FROM device_events WHERE device_id = $1 AND event = 'log'",
                                         b["lora"]["id"])
        assert log_detail["description"] == "nul \ufffd in a log"
        note = await pool.fetchval("SELECT last_message->'payload'->'decoded'->>'note' FROM device_state"
                                   " WHERE device_id = $1", b["http"]["id"])
        assert note in ("nul \ufffd here", None)   # None: the second ingest already replaced the latest message
        unknown = await pool.fetchval("SELECT detail FROM unknown_devices WHERE identifier = 'ffffffffffff0001'")
        assert unknown["device_name"] == "unknown \ufffd device"
        dead = await pool.fetchrow("SELECT last_status, last_response FROM dead_letters d"
                                   " JOIN consumers c ON c.id = d.consumer_id WHERE c.organization_id = $1", a["org"])
        assert dead["last_status"] == 400 and dead["last_response"].startswith("bad field \ufffd in \ufffd")
        assert len(dead["last_response"]) <= 256
        assert api.service.metrics.malformed.labels("chirpstack-mqtt")._value.get() >= 2
    async with asyncio.timeout(15):        # SIGTERM's path: stops, nothing left waiting on the spill store
        await api.service.stop()
    api.service.stop = _already_stopped    # type: ignore[method-assign]


async def _already_stopped() -> None:
    return None


async def test_poison_through_the_http_integration_decoders_csv_and_api(api: Api, broker: MosquittoBroker) -> None:
    """The other entry points: ChirpStack's HTTP integration, a tenant's JavaScript decoder output, a CSV
    import and JSON API bodies, each with NUL, invalid UTF-8 or oversize values; B keeps flowing."""
    async with webhook() as (a_url, a_got), webhook() as (b_url, b_got):
        a = await tenant(api, "tenant-a", a_url, EUI_A)
        b = await tenant(api, "tenant-b", b_url, EUI_B)
        pool = api.service.pool
        assert pool is not None
        js = await api.create("decoders", {"id": "poison-codec", "organization_id": a["org"], "source": POISON_CODEC})
        app_a = a["lora"]["application_id"]
        poisoned = await api.create("devices", {"application_id": app_a, "name": "js", "kind": "http",
                                                "decoder": js["id"]})
        await until(lambda: poisoned["id"] in api.service.cache.snapshot.devices
                    and api.service.js_decoders.get(js["id"], a["org"]) is not None)
        chirpstack = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        async with httpx.AsyncClient(base_url=api.base_url, timeout=15) as client:
            # ChirpStack's HTTP integration: NUL in names, invalid UTF-8, an oversize body, an odd event
            ev = orjson.loads(to_json(uplink_event(dev_eui="ffffffffffff0002", data=FRAME, f_cnt=1)))
            ev["deviceInfo"]["deviceName"] = "nul \u0000 name"
            r = await client.post("/ingest/chirpstack?event=up", content=orjson.dumps(ev), headers=chirpstack)
            assert r.status_code == 200, r.text
            r = await client.post("/ingest/chirpstack?event=up", content=b'{"deviceInfo": {"devEui": "\xff\xfe"}}',
                                  headers=chirpstack)
            assert r.status_code == 400
            r = await client.post("/ingest/chirpstack?event=up", content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                                  headers=chirpstack)
            assert r.status_code == 413
            r = await client.post("/ingest/chirpstack?event=nul%00event", content=b"{}", headers=chirpstack)
            assert r.status_code == 400
            # A's JavaScript decoder returns NUL, a lone surrogate and a long string: delivered, stored cleaned
            r = await client.post("/ingest/http", content=b"\x05", headers={"X-API-Key": poisoned["ingest_key"]})
            assert r.status_code == 202, r.text
            # a CSV import with a NUL cell and an oversize cell: those rows are refused, the file is answered
            csv = ("name,kind,tags\nok,http,\nnul\x00name,http,\nbig,http,k=" + "v" * 70_000 + "\n").encode()
            r = await client.post("/api/v1/devices/import", params={"application_id": app_a, "dry_run": "true"},
                                  content=csv, headers={"Authorization": f"Bearer {api.admin_key}",
                                                        "Content-Type": "text/csv"})
            assert r.status_code == 200, r.text
            assert [row["status"] for row in r.json()["rows"]] == ["created", "error", "error"]
            # JSON API bodies with NUL: a 422 that names the field
            r = await api.client.patch(f"/api/v1/devices/{poisoned['id']}", json={"metadata": {"k": "a\u0000"}})
            assert r.status_code == 422 and "metadata.k" in r.json()["error"]
            # B keeps flowing through all of it
            for i in range(5):
                r = await client.post("/ingest/http", content=b'{"temperature": %d}' % i,
                                      headers={"X-API-Key": b["http"]["ingest_key"],
                                               "Content-Type": "application/json"})
                assert r.status_code == 202, r.text
        await b_got.wait_for(lambda bodies: len(bodies) >= 5, timeout=10)
        await a_got.wait_for(lambda bodies: any(x["device"]["id"] == poisoned["id"] for x in bodies), timeout=10)
        decoded = next(x for x in a_got.bodies if x["device"]["id"] == poisoned["id"])
        assert decoded["decoder"]["status"] == "ok", decoded["decoder"]     # one odd string costs no reading
        assert decoded["payload"]["decoded"]["lone"] == "\ufffd" and decoded["payload"]["decoded"]["temperature"] == 5
        assert decoded["payload"]["decoded"]["note"] == "nul \x00 from a decoder"   # valid JSON for the consumer

        async def stored() -> Any:
            return await pool.fetchval("SELECT last_message FROM device_state WHERE device_id = $1", poisoned["id"])

        async with asyncio.timeout(5):
            while await stored() is None:
                await asyncio.sleep(0.05)
        assert (await stored())["payload"]["decoded"]["note"] == "nul \ufffd from a decoder"

        async def unknown() -> Any:
            return await pool.fetchval("SELECT detail FROM unknown_devices WHERE identifier = 'ffffffffffff0002'")

        async with asyncio.timeout(5):
            while await unknown() is None:
                await asyncio.sleep(0.05)
        assert (await unknown())["device_name"] == "nul \ufffd name"
