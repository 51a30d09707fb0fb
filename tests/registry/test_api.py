"""The REST API on real PostgreSQL over real HTTP: CRUD, validation, ETags, secrets, audit, live config."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support.api import Api

APP_KEY = "00112233445566778899aabbccddeeff"
GOOD_IMEI = "490154203237518"       # a valid check digit


async def org_and_app(api: Api, name: str) -> tuple[str, str]:
    org = await api.create("organizations", {"name": name})
    app = await api.create("applications", {"organization_id": org["id"], "name": "climate"})
    return org["id"], app["id"]


async def test_minimal_bodies_create_everything(api: Api) -> None:
    org, app = await org_and_app(api, "Aarhus")
    dev = await api.create("devices", {"application_id": app, "name": "room 1.12", "kind": "lorawan",
                                       "dev_eui": "A8-17-58-FF-FE-03-12-AB", "decoder": "elsys"})
    assert dev["dev_eui"] == "a81758fffe0312ab" and dev["organization_id"] == org and dev["ingest_key"] is None
    nb = await api.create("devices", {"application_id": app, "name": "water meter", "kind": "nbiot",
                                      "imei": GOOD_IMEI, "decoder": "json"})
    assert nb["ingest_key"].startswith("iotd_ik_") and nb["has_ingest_key"] is True
    hook = await api.create("consumers", {"organization_id": org, "name": "dept", "kind": "http",
                                          "url": "https://example.org/hook", "format": "native"})
    topic = await api.create("consumers", {"organization_id": org, "name": "broker", "kind": "mqtt",
                                           "url": "mqtt://broker:1883/city/{device}", "format": "senml"})
    for body in ({"consumer_id": hook["id"], "application_id": app}, {"consumer_id": topic["id"], "decoder": "elsys"},
                 {"consumer_id": topic["id"], "device_ids": [dev["id"]]}, {"consumer_id": hook["id"],
                                                                           "tags": {"room": "1"}}):
        sub = await api.create("subscriptions", body)
        assert sub["id"] and sub["consumer_id"] == body["consumer_id"]
    listed = (await api.client.get("/api/v1/devices", params={"application_id": app})).json()
    assert listed["total"] == 2 and {d["name"] for d in listed["items"]} == {"room 1.12", "water meter"}


async def test_filters_search_and_pagination(api: Api) -> None:
    _, app = await org_and_app(api, "Odense")
    for i in range(5):
        await api.create("devices", {"application_id": app, "name": f"bin-{i}", "kind": "lorawan",
                                     "dev_eui": f"70b3d5000000010{i}", "decoder": "milesight-em310-udl",
                                     "tags": {"route": "north" if i < 3 else "south"}})
    get = api.client.get
    page = (await get("/api/v1/devices", params={"application_id": app, "limit": 2, "offset": 2})).json()
    assert page["total"] == 5 and [d["name"] for d in page["items"]] == ["bin-2", "bin-3"]
    north = (await get("/api/v1/devices", params={"application_id": app, "tag": "route=north"})).json()
    assert north["total"] == 3
    found = (await get("/api/v1/devices", params={"q": "0000000104"})).json()
    assert [d["name"] for d in found["items"]] == ["bin-4"]
    by_decoder = (await get("/api/v1/devices", params={"application_id": app, "decoder": "elsys"})).json()
    assert by_decoder["total"] == 0
    assert (await get("/api/v1/devices", params={"tag": "no-equals"})).status_code == 422


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"kind": "lorawan", "dev_eui": "xyz"}, 422, "dev_eui must be 16 hex"),
    ({"kind": "lorawan"}, 422, "needs a dev_eui"),
    ({"kind": "lorawan", "dev_eui": "0011223344556677", "app_key": "abc"}, 422, "app_key must be 32 hex"),
    ({"kind": "nbiot", "imei": "490154203237519"}, 422, "check digit"),
    ({"kind": "nbiot"}, 422, "needs an imei"),
    ({"kind": "http", "dev_eui": "0011223344556677"}, 422, "only for lorawan"),
    ({"kind": "satellite"}, 422, "kind"),
    ({"kind": "lorawan", "dev_eui": "0011223344556677", "decoder": "no-such"}, 422, "no decoder"),
    ({"kind": "lorawan", "dev_eui": "0011223344556677", "lat": 91, "lon": 0}, 422, "lat"),
    ({"kind": "lorawan", "dev_eui": "0011223344556677", "surprise": 1}, 422, "surprise"),
])
async def test_device_validation_says_what_is_wrong(api: Api, body: dict[str, Any], status: int, words: str) -> None:
    _, app = await org_and_app(api, f"Validation {words}")
    r = await api.client.post("/api/v1/devices", json={"application_id": app, "name": "d", **body})
    assert r.status_code == status, r.text
    assert words in r.json()["error"]


async def test_duplicates_conflict_and_unknown_parents_are_404(api: Api) -> None:
    _, app = await org_and_app(api, "Vejle")
    body = {"application_id": app, "name": "a", "kind": "lorawan", "dev_eui": "1122334455667788"}
    await api.create("devices", body)
    r = await api.client.post("/api/v1/devices", json={**body, "name": "b"})
    assert r.status_code == 409 and "dev_eui" in r.json()["error"]
    nowhere = "00000000-0000-0000-0000-000000000001"
    r = await api.client.post("/api/v1/devices", json={**body, "application_id": nowhere})
    assert r.status_code == 404
    assert (await api.client.get("/api/v1/devices/not-a-uuid")).status_code == 422
    assert (await api.client.post("/api/v1/organizations", json={"name": "Vejle"})).status_code == 409


async def test_etag_and_if_match_refuse_lost_updates(api: Api) -> None:
    _, app = await org_and_app(api, "Horsens")
    dev = await api.create("devices", {"application_id": app, "name": "x", "kind": "http", "decoder": "json"})
    url = f"/api/v1/devices/{dev['id']}"
    r = await api.client.get(url)
    tag = r.headers["etag"]
    r = await api.client.patch(url, json={"name": "renamed", "tags": {"floor": "2"}}, headers={"If-Match": tag})
    assert r.status_code == 200 and r.json()["name"] == "renamed" and r.headers["etag"] != tag
    stale = await api.client.patch(url, json={"name": "again"}, headers={"If-Match": tag})
    assert stale.status_code == 412 and "changed" in stale.json()["error"]
    assert (await api.client.patch(url, json={"name": None})).status_code == 422
    assert (await api.client.delete(url, headers={"If-Match": tag})).status_code == 412
    assert (await api.client.delete(url, headers={"If-Match": r.headers["etag"]})).status_code == 204
    assert (await api.client.get(url)).status_code == 404


async def test_secrets_go_in_and_never_come_out(api: Api) -> None:
    org, app = await org_and_app(api, "Silkeborg")
    dev = await api.create("devices", {"application_id": app, "name": "s", "kind": "lorawan",
                                       "dev_eui": "aabbccddeeff0011", "app_key": APP_KEY})
    consumer = await api.create("consumers", {
        "organization_id": org, "name": "signed", "kind": "http", "url": "https://example.org/in",
        "secret": "hook-secret-123", "headers": {"Authorization": "Basic c2VjcmV0"}})
    mqtt = await api.create("consumers", {"organization_id": org, "name": "auth", "kind": "mqtt",
                                          "url": "mqtt://user:pa55word@broker:1883/t/{device}"})
    assert mqtt["url"] == "mqtt://***:***@broker:1883/t/{device}"     # the user name is a credential too
    assert dev["has_app_key"] and consumer["has_secret"] and consumer["has_headers"]
    await api.client.patch(f"/api/v1/devices/{dev['id']}", json={"app_key": "ffeeddccbbaa99887766554433221100"})
    rotated = (await api.client.post(f"/api/v1/consumers/{consumer['id']}/rotate-secret")).json()["secret"]
    seen = []
    for path in (f"devices/{dev['id']}", f"consumers/{consumer['id']}", f"consumers/{mqtt['id']}", "devices",
                 "consumers", "audit-log?limit=1000"):
        r = await api.client.get(f"/api/v1/{path}")
        assert r.status_code == 200
        seen.append(r.text.lower())
    everything = "".join(seen)
    for secret in (APP_KEY, "ffeeddccbbaa99887766554433221100", "hook-secret-123", "c2vjcmv0", "pa55word",
                   rotated.lower()):
        assert secret not in everything
    # the stored app_key is encrypted with the installation key, not kept in clear text
    assert api.service.pool is not None
    stored = await api.service.pool.fetchval("SELECT app_key_enc FROM devices WHERE id = $1", dev["id"])
    assert APP_KEY.encode() not in stored and api.service.box.decrypt(stored) == "ffeeddccbbaa99887766554433221100"


async def test_audit_log_says_who_what_and_when(api: Api) -> None:
    org, app = await org_and_app(api, "Randers")
    dev = await api.create("devices", {"application_id": app, "name": "before", "kind": "http"})
    await api.client.patch(f"/api/v1/devices/{dev['id']}", json={"name": "after"})
    await api.client.delete(f"/api/v1/devices/{dev['id']}")
    log = (await api.client.get("/api/v1/audit-log", params={"resource_id": dev["id"]})).json()["items"]
    assert [e["action"] for e in log] == ["delete", "update", "create"]
    update = log[1]
    assert update["before"]["name"] == "before" and update["after"]["name"] == "after"
    assert update["actor"].startswith("key:test admin") and update["organization_id"] == org


async def test_roles_limit_what_a_key_may_do(api: Api) -> None:
    org, app = await org_and_app(api, "Kolding")
    read = await api.create("api-keys", {"name": "dashboard", "role": "read", "organization_id": org})
    write = await api.create("api-keys", {"name": "it", "role": "write", "organization_id": org})
    assert read["key"].startswith("iotd_ak_") and "key_hash" not in read
    async with api.as_key(read["key"]) as reader, api.as_key(write["key"]) as writer:
        assert (await reader.get(f"/api/v1/applications/{app}")).status_code == 200
        r = await reader.post("/api/v1/devices", json={"application_id": app, "name": "d", "kind": "http"})
        assert r.status_code == 403 and "write" in r.json()["error"]
        assert (await writer.post("/api/v1/devices", json={"application_id": app, "name": "d",
                                                           "kind": "http"})).status_code == 201
        r = await writer.post("/api/v1/api-keys", json={"name": "x", "role": "read", "organization_id": org})
        assert r.status_code == 403
        assert (await writer.post("/api/v1/organizations", json={"name": "mine"})).status_code == 403
    revoked = await api.client.post(f"/api/v1/api-keys/{read['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    async with api.as_key(read["key"]) as reader:
        assert (await reader.get(f"/api/v1/applications/{app}")).status_code == 401
    assert (await api.as_key("iotd_ak_wrong").get("/api/v1/organizations")).status_code == 401
    import httpx
    async with httpx.AsyncClient(base_url=api.base_url) as anonymous:
        r = await anonymous.get("/api/v1/devices")
        assert r.status_code == 401 and "Bearer" in r.json()["error"]


async def test_a_change_reaches_the_running_distributor_within_a_second(api: Api) -> None:
    _, app = await org_and_app(api, "Herning")
    dev = await api.create("devices", {"application_id": app, "name": "live", "kind": "lorawan",
                                       "dev_eui": "0102030405060708", "decoder": "elsys"})
    async with asyncio.timeout(1.0):
        while "0102030405060708" not in api.service.cache.snapshot.by_dev_eui:
            await asyncio.sleep(0.01)
    await api.client.patch(f"/api/v1/devices/{dev['id']}", json={"decoder": "cayenne-lpp"})
    async with asyncio.timeout(1.0):
        while api.service.cache.snapshot.by_dev_eui["0102030405060708"].decoder != "cayenne-lpp":
            await asyncio.sleep(0.01)


async def test_unknown_devices_register_in_one_step(api: Api) -> None:
    _, app = await org_and_app(api, "Viborg")
    assert api.service.pool is not None
    await api.service.pool.execute(
        "INSERT INTO unknown_devices (source, identifier, first_seen, last_seen, count, detail)"
        " VALUES ('chirpstack-mqtt', 'a0b0c0d0e0f01020', now(), now(), 3, '{\"device_name\": \"bin-77\"}')")
    listed = (await api.client.get("/api/v1/unknown-devices", params={"q": "a0b0c0"})).json()
    assert listed["items"][0]["count"] == 3
    r = await api.client.post("/api/v1/unknown-devices/a0b0c0d0e0f01020/register",
                              json={"application_id": app, "decoder": "elsys"})
    assert r.status_code == 201 and r.json()["name"] == "bin-77"
    assert (await api.client.get("/api/v1/unknown-devices", params={"q": "a0b0c0"})).json()["total"] == 0


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/api/v1/dead-letters/99999999999999999999", None),
    ("POST", "/api/v1/dead-letters/replay", {"ids": [99999999999999999999]}),
    ("POST", "/api/v1/organizations", {"name": "nul\u0000byte"}),
    ("POST", "/api/v1/devices", {"application_id": "00000000-0000-0000-0000-000000000000", "name": "d",
                                 "kind": "http", "metadata": {"note": ["ok", "nul\u0000byte"]}}),
    ("GET", "/api/v1/devices?q=nul%00byte", None),
    ("POST", "/api/v1/dead-letters/replay", {}),
])
async def test_odd_input_is_a_4xx_not_a_server_error(api: Api, method: str, path: str, body: Any) -> None:
    r = await api.client.request(method, path, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]
    if "metadata" in (body or {}):
        assert r.json()["error"] == "metadata.note[1]: text may not contain a NUL (\\u0000) character"
