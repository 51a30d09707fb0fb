"""Tenants never see each other: a key of one organization gets 404 for every object of another,
in every endpoint, and lists never include them. Real PostgreSQL, real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from tests.support.api import Api, running_api
from tests.support.database import create_database, drop_database


@dataclass
class Tenant:
    org: str
    app: str
    device: str
    nbiot: str
    consumer: str
    subscription: str
    user: str
    key_id: str
    key: str


async def make_tenant(api: Api, name: str, eui: str, imei: str) -> Tenant:
    org = (await api.create("organizations", {"name": name}))["id"]
    app = (await api.create("applications", {"organization_id": org, "name": "app"}))["id"]
    dev = (await api.create("devices", {"application_id": app, "name": "d", "kind": "lorawan", "dev_eui": eui}))["id"]
    nb = (await api.create("devices", {"application_id": app, "name": "n", "kind": "nbiot", "imei": imei}))["id"]
    con = (await api.create("consumers", {"organization_id": org, "name": "c", "kind": "http",
                                          "url": "http://127.0.0.1:9/x"}))["id"]
    sub = (await api.create("subscriptions", {"consumer_id": con, "application_id": app}))["id"]
    user = (await api.create("users", {"organization_id": org, "name": "u", "email": f"it@{name}.dk",
                                       "role": "admin"}))["id"]
    key = await api.create("api-keys", {"organization_id": org, "name": "admin", "role": "admin"})
    assert api.service.pool is not None
    await api.service.pool.execute(
        "INSERT INTO dead_letters (consumer_id, message_id, body, attempts, reason, first_failed_at)"
        " VALUES ($1, $2, 'x', 1, 'refused by the consumer', now())", con, f"msg-{name}")
    return Tenant(org, app, dev, nb, con, sub, user, key["id"], key["key"])


@pytest.fixture(scope="module")
async def world() -> AsyncIterator[tuple[Api, Tenant, Tenant]]:
    url = await create_database("iotd_tenancy")
    async with running_api(url) as api:
        a = await make_tenant(api, "aalborg", "a000000000000001", "490154203237518")
        b = await make_tenant(api, "bornholm", "b000000000000001", "356938035643809")
        yield api, a, b
    await drop_database(url)


def other_tenants_objects(b: Tenant) -> list[tuple[str, str, dict[str, object] | None]]:
    """(method, path, json body) for every endpoint that addresses one of b's objects."""
    patch = {"name": "taken over"}
    return [
        ("GET", f"organizations/{b.org}", None), ("PATCH", f"organizations/{b.org}", patch),
        ("DELETE", f"organizations/{b.org}", None),
        ("GET", f"applications/{b.app}", None), ("PATCH", f"applications/{b.app}", patch),
        ("DELETE", f"applications/{b.app}", None),
        ("GET", f"devices/{b.device}", None), ("PATCH", f"devices/{b.device}", patch),
        ("DELETE", f"devices/{b.device}", None), ("GET", f"devices/{b.device}/latest", None),
        ("GET", f"devices/{b.device}/stats", None), ("POST", f"devices/{b.nbiot}/rotate-ingest-key", None),
        ("GET", f"devices/{b.device}/messages", None), ("GET", f"devices/{b.device}/measurements", None),
        ("GET", f"consumers/{b.consumer}", None), ("PATCH", f"consumers/{b.consumer}", patch),
        ("DELETE", f"consumers/{b.consumer}", None), ("POST", f"consumers/{b.consumer}/rotate-secret", None),
        ("GET", f"consumers/{b.consumer}/delivery-log", None),
        ("GET", f"subscriptions/{b.subscription}", None), ("DELETE", f"subscriptions/{b.subscription}", None),
        ("GET", f"users/{b.user}", None), ("PATCH", f"users/{b.user}", patch), ("DELETE", f"users/{b.user}", None),
        ("GET", f"api-keys/{b.key_id}", None), ("POST", f"api-keys/{b.key_id}/revoke", None),
        # creating things inside b, or pointing at b's objects from a's
        ("POST", "applications", {"organization_id": b.org, "name": "x"}),
        ("POST", "devices", {"application_id": b.app, "name": "x", "kind": "http"}),
        ("POST", "consumers", {"organization_id": b.org, "name": "x", "kind": "http", "url": "http://h/x"}),
        ("POST", "subscriptions", {"consumer_id": b.consumer, "application_id": b.app}),
        ("POST", "users", {"organization_id": b.org, "name": "x", "email": "x@y.dk", "role": "read"}),
        ("POST", "api-keys", {"organization_id": b.org, "name": "x", "role": "read"}),
    ]


MATRIX_SIZE = 32


@pytest.mark.parametrize("case", range(MATRIX_SIZE))
async def test_every_endpoint_hides_another_tenants_objects(world: tuple[Api, Tenant, Tenant], case: int) -> None:
    api, a, b = world
    cases = other_tenants_objects(b)
    assert len(cases) == MATRIX_SIZE
    method, path, body = cases[case]
    async with api.as_key(a.key) as client:
        r = await client.request(method, f"/api/v1/{path}", json=body)
    assert r.status_code == 404, (method, path, r.status_code, r.text)


async def test_pointing_at_another_tenants_objects_from_your_own_is_404(world: tuple[Api, Tenant, Tenant]) -> None:
    api, a, b = world
    async with api.as_key(a.key) as client:
        for body in ({"consumer_id": a.consumer, "application_id": b.app},
                     {"consumer_id": a.consumer, "device_ids": [b.device]}):
            r = await client.post("/api/v1/subscriptions", json=body)
            assert r.status_code == 404, r.text
        r = await client.post("/api/v1/api-keys", json={"organization_id": a.org, "name": "x", "role": "read",
                                                         "user_id": b.user})
        assert r.status_code == 404


@pytest.mark.parametrize("path", ["organizations", "applications", "devices", "consumers", "subscriptions", "users",
                                  "api-keys", "dead-letters", "audit-log?limit=1000"])
async def test_lists_show_only_your_own(world: tuple[Api, Tenant, Tenant], path: str) -> None:
    api, a, b = world
    async with api.as_key(a.key) as client:
        r = await client.get(f"/api/v1/{path}")
    assert r.status_code == 200, r.text
    text = r.text
    assert r.json()["items"], "the list should show the tenant's own objects"
    for foreign in (b.org, b.app, b.device, b.nbiot, b.consumer, b.subscription, b.user, b.key_id, "msg-bornholm"):
        assert foreign not in text


async def test_bulk_dead_letter_actions_stay_inside_the_tenant(world: tuple[Api, Tenant, Tenant]) -> None:
    api, a, b = world
    async with api.as_key(a.key) as client:
        r = await client.post("/api/v1/dead-letters/discard", json={"consumer_id": b.consumer})
        assert r.status_code == 200 and r.json()["count"] == 0
        assert (await client.post("/api/v1/dead-letters/replay", json={"all": True})).json()["count"] == 1
    assert api.service.pool is not None
    left = await api.service.pool.fetch("SELECT message_id FROM dead_letters")
    assert [r["message_id"] for r in left] == ["msg-bornholm"]


async def test_the_global_admin_sees_both(world: tuple[Api, Tenant, Tenant]) -> None:
    api, a, b = world
    r = await api.client.get("/api/v1/devices", params={"limit": 1000})
    ids = {d["id"] for d in r.json()["items"]}
    assert {a.device, b.device} <= ids


async def test_unknown_devices_of_unmapped_tenants_are_for_global_keys(world: tuple[Api, Tenant, Tenant]) -> None:
    api, a, _ = world
    assert api.service.pool is not None
    await api.service.pool.execute(
        "INSERT INTO unknown_devices (source, identifier, first_seen, last_seen, count, detail) VALUES"
        " ('chirpstack-http', 'c0c0c0c0c0c0c0c0', now(), now(), 1, '{\"tenant_id\": \"t\", \"device_name\": \"x\"}')")
    async with api.as_key(a.key) as client:   # heard under no tenant mapped to a: a sees nothing, claims nothing
        assert (await client.get("/api/v1/unknown-devices")).json()["total"] == 0
        r = await client.post("/api/v1/unknown-devices/c0c0c0c0c0c0c0c0/register", json={"application_id": a.app})
        assert r.status_code == 404
    assert (await api.client.get("/api/v1/unknown-devices")).json()["total"] == 1


