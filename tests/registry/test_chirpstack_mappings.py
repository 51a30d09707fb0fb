"""Organizations mapped to ChirpStack tenants (issue 13, finding 10): an event from a tenant mapped to one
organization never reaches another organization's device, and an unknown device is only listed to and
claimed by the organization it was heard for. Real service, PostgreSQL, HTTP ingest and a webhook."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from distributor.demo_feed import status_event, to_json, uplink_event
from registry.tenancy import owner, owner_sql
from tests.support.api import Api, running_api
from tests.support.database import create_database, drop_database
from tests.support.receivers import Received, webhook

TOKEN = "chirpstack-token-for-mapping-tests-0123"
T_A = "11111111-1111-4111-8111-111111111111"      # ChirpStack tenant of organization A
T_SHARED = "22222222-2222-4222-8222-222222222222"  # one tenant, application P for B, the rest for A
T_FREE = "33333333-3333-4333-8333-333333333333"    # mapped to nobody
APP_P = "44444444-4444-4444-8444-444444444444"
APP_Q = "55555555-5555-4555-8555-555555555555"
B_EUI = "b0b0b0b0b0b0b0b0"                         # registered in B
STRANGER = "5151515151515151"                      # registered nowhere
FRAME = bytes.fromhex("0101170231")


@dataclass
class World:
    api: Api
    a: str
    b: str
    a_app: str
    b_app: str
    b_device: str
    a_writer: str
    a_reader: str
    b_writer: str
    hook: Received


@pytest.fixture(scope="module")
async def world() -> AsyncIterator[World]:
    url = await create_database("iotd_mappings")
    async with running_api(url, chirpstack_http_token=TOKEN, state_flush_interval_s=0.05,
                           consumer_allowed_networks="127.0.0.0/8") as api, webhook() as (hook_url, hook):
        a = (await api.create("organizations", {"name": "A"}))["id"]
        b = (await api.create("organizations", {"name": "B"}))["id"]
        a_app = (await api.create("applications", {"organization_id": a, "name": "a"}))["id"]
        b_app = (await api.create("applications", {"organization_id": b, "name": "b"}))["id"]
        b_device = (await api.create("devices", {"application_id": b_app, "name": "b's sensor", "kind": "lorawan",
                                                 "dev_eui": B_EUI, "decoder": "elsys"}))["id"]
        consumer = (await api.create("consumers", {"organization_id": b, "name": "b", "kind": "http",
                                                   "url": hook_url}))["id"]
        await api.create("subscriptions", {"consumer_id": consumer, "application_id": b_app})
        keys = [(await api.create("api-keys", {"organization_id": org, "name": role, "role": role}))["key"]
                for org, role in ((a, "write"), (a, "read"), (b, "write"))]
        for org, body in ((a, {"tenant_id": T_A}), (a, {"tenant_id": T_SHARED}),
                          (b, {"tenant_id": T_SHARED, "application_id": APP_P})):
            await api.create(f"organizations/{org}/chirpstack-mappings", body)
        async with asyncio.timeout(2):
            while not (b_device in api.service.cache.snapshot.devices and consumer in api.service.dispatcher.lanes):
                await asyncio.sleep(0.02)
        yield World(api, a, b, a_app, b_app, b_device, *keys, hook)
    await drop_database(url)


async def send(w: World, f_cnt: int, tenant: str, application: str = APP_Q, dev_eui: str = B_EUI,
               event: str = "up") -> None:
    if event == "up":
        ev = uplink_event(dev_eui=dev_eui, data=FRAME, f_cnt=f_cnt, tenant_id=tenant, application_id=application,
                          device_name=f"heard-{f_cnt}")
    else:
        ev = status_event(dev_eui, battery=11.0)
        ev.device_info.tenant_id, ev.device_info.application_id = tenant, application
    async with httpx.AsyncClient(base_url=w.api.base_url, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        r = await c.post(f"/ingest/chirpstack?event={event}", content=to_json(ev))
    assert r.status_code == 200, r.text


async def unknown(w: World, key: str | None = None) -> dict[str, int]:
    """identifier -> count, as the key sees /unknown-devices, once the state writer has flushed."""
    await asyncio.sleep(0.3)
    client = w.api.as_key(key) if key else w.api.client
    r = await client.get("/api/v1/unknown-devices")
    assert r.status_code == 200, r.text
    return {u["identifier"]: u["count"] for u in r.json()["items"]}


async def test_events_of_a_tenant_mapped_to_another_organization_never_reach_its_devices(world: World) -> None:
    w = world
    await send(w, 1, T_A)                                  # A's tenant, B's dev_eui: hijack attempt
    await send(w, 2, T_SHARED, APP_Q)                      # the shared tenant outside B's application
    await send(w, 3, T_SHARED, APP_P)                      # B's own application: delivered
    await send(w, 4, T_FREE)                               # an unmapped tenant: as before mappings, delivered
    await w.hook.wait_for(lambda b: {m["network"]["f_cnt"] for m in b} >= {3, 4})
    await asyncio.sleep(0.3)
    assert sorted(m["network"]["f_cnt"] for m in w.hook.bodies) == [3, 4]
    assert (await unknown(w))[B_EUI] == 2                  # counted and listed as an unknown device
    metrics = w.api.service.metrics.render().decode()
    assert 'iotd_unknown_device_uplinks_total{source="chirpstack-http"} 2.0' in metrics
    # A sees the sightings under its tenants; B (whose tenant did not send them) does not
    assert B_EUI in await unknown(w, w.a_reader)
    assert B_EUI not in await unknown(w, w.b_writer)
    # registering it is the unavoidable fact that the dev_eui is taken, nothing more
    async with w.api.as_key(w.a_writer) as a:
        r = await a.post(f"/api/v1/unknown-devices/{B_EUI}/register", json={"application_id": w.a_app})
    assert r.status_code == 409 and r.json() == {"error": "dev_eui is already registered"}


async def test_device_events_follow_the_same_rule(world: World) -> None:
    w = world
    await send(w, 0, T_A, event="status")
    await asyncio.sleep(0.3)
    latest = (await w.api.client.get(f"/api/v1/devices/{w.b_device}/latest")).json()
    assert latest.get("battery_level") is None             # A's tenant cannot set B's device state
    await send(w, 0, T_SHARED, APP_P, event="status")
    async with asyncio.timeout(5):
        while (await w.api.client.get(f"/api/v1/devices/{w.b_device}/latest")).json().get("battery_level") != 11.0:
            await asyncio.sleep(0.05)


async def test_only_the_organization_a_device_was_heard_for_may_claim_it(world: World) -> None:
    w = world
    await send(w, 10, T_A, dev_eui=STRANGER)
    assert STRANGER in await unknown(w, w.a_reader) and STRANGER not in await unknown(w, w.b_writer)
    never = "5252525252525252"
    async with w.api.as_key(w.b_writer) as b:   # heard for A, and never heard: the same answer
        answers = [await b.post(f"/api/v1/unknown-devices/{eui}/register", json={"application_id": w.b_app})
                   for eui in (STRANGER, never)]
    assert [(r.status_code, r.json()) for r in answers] == [(404, {"error": "unknown device not found"})] * 2
    async with w.api.as_key(w.a_reader) as reader:
        r = await reader.post(f"/api/v1/unknown-devices/{STRANGER}/register", json={"application_id": w.a_app})
        assert r.status_code == 403
    async with w.api.as_key(w.a_writer) as a:
        r = await a.post(f"/api/v1/unknown-devices/{STRANGER}/register", json={"application_id": w.a_app})
    assert r.status_code == 201 and r.json()["name"] == "heard-10"
    assert STRANGER not in await unknown(w)


async def test_mappings_are_read_by_the_organization_and_changed_by_a_global_admin(world: World) -> None:
    w = world
    path = f"/api/v1/organizations/{w.a}/chirpstack-mappings"
    async with w.api.as_key(w.a_reader) as reader, w.api.as_key(w.b_writer) as other:
        mine = (await reader.get(path)).json()
        assert [(m["tenant_id"], m["application_id"]) for m in mine["items"]] == [(T_A, None), (T_SHARED, None)]
        assert (await reader.post(path, json={"tenant_id": T_FREE})).status_code == 403
        assert (await other.get(path)).status_code == 404                       # another organization's
        assert (await other.post(path, json={"tenant_id": T_FREE})).status_code == 404
    r = await w.api.client.post(f"/api/v1/organizations/{w.b}/chirpstack-mappings", json={"tenant_id": T_A})
    assert r.status_code == 409 and "already mapped" in r.json()["error"]
    created = await w.api.create(f"organizations/{w.b}/chirpstack-mappings", {"tenant_id": T_FREE})
    assert w.api.service.cache.snapshot.chirpstack_owner(T_FREE, None) == w.b     # in effect when answered
    assert (await w.api.client.delete(f"{path}/{created['id']}")).status_code == 404   # not under A
    url = f"/api/v1/organizations/{w.b}/chirpstack-mappings/{created['id']}"
    async with w.api.as_key(w.b_writer) as b:
        assert (await b.delete(url)).status_code == 403
    assert (await w.api.client.delete(url)).status_code == 204
    assert w.api.service.cache.snapshot.chirpstack_owner(T_FREE, None) is None
    audit = (await w.api.client.get("/api/v1/audit-log", params={"resource": "chirpstack_mapping"})).json()
    assert [e["action"] for e in audit["items"]][:2] == ["delete", "create"]


@pytest.mark.parametrize(("tenant", "application"), [
    (T_A, APP_Q), (T_A, None), (T_SHARED, APP_P), (T_SHARED, APP_Q), (T_SHARED, None), (T_FREE, APP_P),
    (T_SHARED.upper(), APP_P.upper()), ("", APP_P), (None, None),
])
async def test_the_sql_rule_is_the_python_rule(world: World, tenant: str | None, application: str | None) -> None:
    w = world
    assert w.api.service.pool is not None
    detail = {k: v for k, v in (("tenant_id", tenant), ("application_id", application)) if v is not None}
    in_sql = await w.api.service.pool.fetchval(f"SELECT ({owner_sql('$1::jsonb')})::text", detail)
    assert in_sql == owner(w.api.service.cache.snapshot.chirpstack_owners, tenant, application)
