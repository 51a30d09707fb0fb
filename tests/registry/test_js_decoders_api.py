"""JavaScript decoders through the API: registered, checked, tested, used by devices, isolated by tenant.
Real service, real PostgreSQL, real QuickJS; the codecs are written here in the TTN and OS2iot dialects."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from registry.js_store import take_trial
from tests.support.api import Api, running_api
from tests.support.database import create_database, drop_database
from tests.support.receivers import webhook

TTN_CODEC = """
function decodeUplink(input) {
  if (input.bytes.length < 3) { return { errors: ["need 3 bytes"] }; }
  var t = ((input.bytes[0] << 8) | input.bytes[1]) / 10;
  return { data: { temperature: t, fill: input.bytes[2] } };
}
function normalizeUplink(input) {
  return { data: { air: { temperature: input.data.temperature, relativeHumidity: 40 } } };
}
"""
EXAMPLES = [
    {"description": "21.5 degrees", "input": {"fPort": 1, "bytes": [0, 215, 7]},
     "output": {"data": {"temperature": 21.5, "fill": 7}}},
    {"description": "short", "input": {"fPort": 1, "bytes": [1]}, "output": {"errors": ["need 3 bytes"]}},
]
LOOPING = "function decodeUplink(input) { while (true) {} }"


@pytest.fixture(scope="module")
async def api() -> AsyncIterator[Api]:
    url = await create_database("iotd_js")
    async with running_api(url, consumer_allowed_networks="127.0.0.0/8") as a:
        yield a
    await drop_database(url)


async def tenant(api: Api, name: str) -> tuple[str, str, str]:
    org = (await api.create("organizations", {"name": name}))["id"]
    app = (await api.create("applications", {"organization_id": org, "name": "a"}))["id"]
    key = (await api.create("api-keys", {"organization_id": org, "name": "k", "role": "admin"}))["key"]
    return org, app, key


async def test_a_codec_is_checked_before_it_is_saved(api: Api) -> None:
    org, _, key = await tenant(api, "checks")  # the organization's key: trials count per organization
    client = api.as_key(key)
    body: dict[str, Any] = {"id": "fill-meter", "organization_id": org, "source": TTN_CODEC, "examples": EXAMPLES}
    created = await api.create("decoders", body, client)
    assert created["dialect"] == "ttn" and created["kind"] == "javascript" and created["version"] == 1
    again = await client.post("/api/v1/decoders", json=body)
    assert again.status_code == 409
    wrong = {**body, "id": "fill-wrong", "examples": [{**EXAMPLES[0], "output": {"data": {"temperature": 99}}}]}
    r = await client.post("/api/v1/decoders", json=wrong)
    assert r.status_code == 422 and "examples fail" in r.json()["error"] and "21.5 degrees" in r.json()["error"]
    r = await client.post("/api/v1/decoders", json={**body, "id": "broken", "source": "function decodeUplink( {"})
    assert r.status_code == 422 and "does not compile" in r.json()["error"]
    r = await client.post("/api/v1/decoders", json={**body, "id": "elsys"})
    assert r.status_code == 422 and "built-in" in r.json()["error"]
    listed = (await api.client.get("/api/v1/decoders", params={"kind": "javascript"})).json()
    assert "fill-meter" in {d["id"] for d in listed["items"]}


async def test_the_test_endpoint_decodes_and_is_rate_limited(api: Api) -> None:
    org, _, key = await tenant(api, "tests")
    async with api.as_key(key) as client:
        await api.create("decoders", {"id": "t-codec", "organization_id": org, "source": TTN_CODEC}, client)
        r = await client.post("/api/v1/decoders/t-codec/test", json={"payload_hex": "00d707", "fport": 1})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["data"] == {"temperature": 21.5, "fill": 7} and out["errors"] == []
        assert {"name": "humidity", "unit": "%RH", "value": 40} in out["measurements"]  # from normalizeUplink
        r = await client.post("/api/v1/decoders/test", json={"source": LOOPING, "payload_hex": "00"})
        assert r.status_code == 200 and "timed out" in " ".join(r.json()["errors"])
        statuses = []
        for _ in range(12):
            statuses.append((await client.post("/api/v1/decoders/test", json={"source": TTN_CODEC,
                                                                                "payload_hex": "000000"})).status_code)
        assert 429 in statuses
        limited = await client.post("/api/v1/decoders/test", json={"source": TTN_CODEC, "payload_hex": "00"})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1


async def test_another_tenant_cannot_see_use_or_change_it(api: Api) -> None:
    org_a, _, key_a = await tenant(api, "owner")
    _, app_b, key_b = await tenant(api, "neighbour")
    async with api.as_key(key_a) as a:
        await api.create("decoders", {"id": "private-codec", "organization_id": org_a, "source": TTN_CODEC}, a)
    async with api.as_key(key_b) as b:
        assert (await b.get("/api/v1/decoders/private-codec")).status_code == 404
        assert (await b.post("/api/v1/decoders/private-codec/test", json={"payload_hex": "00"})).status_code == 404
        assert (await b.patch("/api/v1/decoders/private-codec", json={"model": "x"})).status_code == 404
        assert (await b.delete("/api/v1/decoders/private-codec")).status_code == 404
        listed = (await b.get("/api/v1/decoders", params={"limit": 1000})).json()
        assert "private-codec" not in {d["id"] for d in listed["items"]}
        r = await b.post("/api/v1/devices", json={"application_id": app_b, "name": "d", "kind": "http",
                                                  "decoder": "private-codec"})
        assert r.status_code == 422 and "no decoder" in r.json()["error"]


async def test_devices_decode_with_it_and_a_runaway_codec_is_an_error_not_an_outage(api: Api) -> None:
    org, app, key = await tenant(api, "users")
    async with api.as_key(key) as c:
        await api.create("decoders", {"id": "good-js", "organization_id": org, "source": TTN_CODEC}, c)
        await api.create("decoders", {"id": "loop-js", "organization_id": org, "source": LOOPING, "timeout_ms": 50}, c)
    good = await api.create("devices", {"application_id": app, "name": "good", "kind": "http", "decoder": "good-js"})
    bad = await api.create("devices", {"application_id": app, "name": "bad", "kind": "http", "decoder": "loop-js"})
    async with webhook() as (url, got):
        consumer = (await api.create("consumers", {"organization_id": org, "name": "c", "kind": "http",
                                                   "url": url}))["id"]
        await api.create("subscriptions", {"consumer_id": consumer, "application_id": app})
        async with asyncio.timeout(3):
            while True:
                snap = api.service.cache.snapshot
                dev = snap.devices.get(bad["id"])
                if dev is not None and snap.consumers_for(dev) and consumer in api.service.dispatcher.lanes:
                    break
                await asyncio.sleep(0.02)
        async with httpx.AsyncClient(base_url=api.base_url) as device:
            for d in (bad, good):
                r = await device.post("/ingest/http", content=bytes.fromhex("00d707"),
                                      headers={"X-API-Key": d["ingest_key"]})
                assert r.status_code == 202, r.text
        await got.wait_for(lambda b: len(b) >= 2, timeout=10)
    by_name = {b["device"]["name"]: b for b in got.bodies}
    assert by_name["good"]["decoder"]["status"] == "ok"
    assert by_name["good"]["payload"]["decoded"] == {"temperature": 21.5, "fill": 7}
    assert {"name": "temperature", "unit": "Cel", "value": 21.5} in by_name["good"]["measurements"]
    assert by_name["bad"]["decoder"]["status"] == "error" and by_name["bad"]["payload"]["raw"] == "ANcH"
    assert "timed out" in " ".join(by_name["bad"]["decoder"]["errors"])
    metrics = api.service.metrics.render().decode()
    assert 'iotd_js_decoder_timeouts_total{decoder="loop-js"} 1.0' in metrics
    assert 'iotd_js_decoder_calls_total{decoder="good-js"}' in metrics
    r = await api.client.delete("/api/v1/decoders/good-js")
    assert r.status_code == 409 and "device" in r.json()["error"]


async def test_updates_are_versioned_and_recompiled(api: Api) -> None:
    org, _, key = await tenant(api, "versions")
    client = api.as_key(key)
    await api.create("decoders", {"id": "v-codec", "organization_id": org, "source": TTN_CODEC}, client)
    r = await client.get("/api/v1/decoders/v-codec")
    tag = r.headers["etag"]
    changed = TTN_CODEC.replace("/ 10", "/ 100")
    r = await client.patch("/api/v1/decoders/v-codec", json={"source": changed}, headers={"If-Match": tag})
    assert r.status_code == 200 and r.json()["version"] == 2
    assert (await client.patch("/api/v1/decoders/v-codec", json={"model": "m"},
                                   headers={"If-Match": tag})).status_code == 412
    async with asyncio.timeout(2):
        while api.service.js_decoders.get("v-codec", org) is None or \
                api.service.js_decoders.get("v-codec", org).version != 2:  # type: ignore[union-attr]
            await asyncio.sleep(0.02)
    r = await client.post("/api/v1/decoders/v-codec/test", json={"payload_hex": "00d707"})
    assert r.json()["data"]["temperature"] == 2.15


async def test_read_keys_and_other_organizations_run_no_code(api: Api) -> None:
    """Issue 13, finding 7: the role and organization are checked before any code is compiled or run."""
    org, _, key = await tenant(api, "readers")
    other, _, _ = await tenant(api, "others")
    async with api.as_key(key) as owner:
        await api.create("decoders", {"id": "read-target", "organization_id": org, "source": TTN_CODEC}, owner)
    reader = (await api.create("api-keys", {"organization_id": org, "name": "r", "role": "read"}))["key"]
    outsider = (await api.create("api-keys", {"organization_id": other, "name": "w", "role": "write"}))["key"]
    slow = {"id": "never-run", "organization_id": org, "source": LOOPING, "timeout_ms": 5000,
            "examples": [{"description": "x", "input": {"fPort": 1, "bytes": [1]}, "output": {"data": {}}}]}
    buckets = "SELECT bucket, tokens, updated_at FROM trial_limits WHERE bucket = ANY($1::text[]) ORDER BY bucket"
    assert api.service.pool is not None
    before = await api.service.pool.fetch(buckets, [f"org:{org}", f"org:{other}"])
    async with api.as_key(reader) as r, api.as_key(outsider) as o:
        started = time.monotonic()
        calls = [await r.post("/api/v1/decoders", json=slow),
                 await r.patch("/api/v1/decoders/read-target", json={"source": LOOPING}),
                 await r.post("/api/v1/decoders/read-target/test", json={"payload_hex": "00"}),
                 await r.post("/api/v1/decoders/elsys/test", json={"payload_hex": "00"}),
                 await r.post("/api/v1/decoders/test",
                              json={"source": LOOPING, "payload_hex": "00", "timeout_ms": 5000})]
        assert [c.status_code for c in calls] == [403] * 5, [c.text for c in calls]
        refused = [await o.post("/api/v1/decoders", json=slow),
                   await o.patch("/api/v1/decoders/read-target", json={"source": LOOPING}),
                   await o.post("/api/v1/decoders/read-target/test", json={"payload_hex": "00"})]
        assert [c.status_code for c in refused] == [404] * 3, [c.text for c in refused]
        assert time.monotonic() - started < 3  # one looping trial alone would take 5 s
    after = await api.service.pool.fetch(buckets, [f"org:{org}", f"org:{other}"])
    assert after == before and len(before) == 1  # the owner's one trial (creating it); nothing since


async def test_examples_are_bounded(api: Api) -> None:
    org, _, key = await tenant(api, "bounded")
    client = api.as_key(key)
    example = EXAMPLES[0]
    r = await client.post("/api/v1/decoders", json={"id": "too-many", "organization_id": org,
                                                         "source": TTN_CODEC, "examples": [example] * 101})
    assert r.status_code == 422 and "100" in r.text
    r = await client.post("/api/v1/decoders", json={"id": "enough", "organization_id": org,
                                                         "source": TTN_CODEC, "examples": [example] * 100})
    assert r.status_code == 201, r.text


async def test_trials_are_limited_per_organization_for_every_key_and_instance(api: Api) -> None:
    org, _, key = await tenant(api, "limited")
    second = (await api.create("api-keys", {"organization_id": org, "name": "k2", "role": "write"}))["key"]
    other_org, _, other_key = await tenant(api, "unaffected")
    async with api.as_key(key) as first, api.as_key(second) as again, api.as_key(other_key) as other:
        statuses = [(await first.post("/api/v1/decoders/test", json={"source": TTN_CODEC, "payload_hex": "000000"})
                     ).status_code for _ in range(10)]
        assert statuses == [200] * 10
        r = await again.post("/api/v1/decoders/test", json={"source": TTN_CODEC, "payload_hex": "000000"})
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1  # a new key does not help
        r = await first.post("/api/v1/decoders", json={"id": "limited-codec", "organization_id": org,
                                                         "source": TTN_CODEC})
        assert r.status_code == 429  # a check before saving is a trial too
        r = await other.post("/api/v1/decoders/test", json={"source": TTN_CODEC, "payload_hex": "000000"})
        assert r.status_code == 200
    pool = await asyncpg.create_pool(api.service.settings.database_url)  # another instance's view of the bucket
    try:
        async with pool.acquire() as conn:
            assert await take_trial(conn, f"org:{org}") is not None
            assert await take_trial(conn, f"org:{other_org}") is None
    finally:
        await pool.close()
