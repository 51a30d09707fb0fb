"""CSV import and export through the real API on real PostgreSQL: the upsert, per-row errors, tenancy, dry runs."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.perf.bench_device_import import imei
from tests.perf.bench_device_import import run as bench_run
from tests.support.api import Api

APP_KEY = "00112233445566778899aabbccddeeff"
IMEI = "490154203237518"


async def org_and_app(api: Api, name: str) -> tuple[str, str]:
    org = await api.create("organizations", {"name": name})
    app = await api.create("applications", {"organization_id": org["id"], "name": "sensors"})
    return org["id"], app["id"]


async def org_key(api: Api, org: str, role: str = "write") -> httpx.AsyncClient:
    key = await api.create("api-keys", {"organization_id": org, "name": f"{role} key", "role": role})
    return api.as_key(key["key"])


async def post_csv(client: httpx.AsyncClient, text: str, **params: Any) -> httpx.Response:
    return await client.post("/api/v1/devices/import", content=text.encode(), params=params,
                             headers={"Content-Type": "text/csv; charset=utf-8"})


async def imported(client: httpx.AsyncClient, text: str, **params: Any) -> dict[str, Any]:
    r = await post_csv(client, text, **params)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def counts(result: dict[str, Any]) -> tuple[int, int, int, int]:
    return result["created"], result["updated"], result["unchanged"], result["errors"]


def statuses(result: dict[str, Any]) -> list[tuple[int, str]]:
    return [(r["line"], r["status"]) for r in result["rows"]]


async def devices_of(api: Api, app: str) -> dict[str, dict[str, Any]]:
    r = await api.client.get("/api/v1/devices", params={"application_id": app, "limit": 1000})
    return {d["name"]: d for d in r.json()["items"]}


async def audit_count(api: Api) -> int:
    total: int = (await api.client.get("/api/v1/audit-log", params={"resource": "device", "limit": 1})).json()["total"]
    return total


def first_csv(n: int) -> str:
    """Three devices (lorawan, nbiot, http) with identifiers of their own: the n-th set."""
    return ("name,kind,dev_eui,app_key,imei,decoder,lat,lon,interval_s,tags,metadata\n"
            f"room 1,lorawan,A8-17-58-FF-FE-{n:02X}-12-AB,{APP_KEY},,elsys,55.67,12.56,600,floor=1;wing=east,\n"
            f"meter,nbiot,,,{imei(n)},json,,,3600,,\"{{\"\"serial\"\": 7}}\"\n"
            "gateway,http,,,,json,,,,,\n")


async def test_import_creates_and_importing_again_changes_nothing(api: Api) -> None:
    _, app = await org_and_app(api, "Aarhus")
    first = await imported(api.client, first_csv(1), application_id=app)
    assert counts(first) == (3, 0, 0, 0) and statuses(first) == [(2, "created"), (3, "created"), (4, "created")]
    keys = [r["ingest_key"] for r in first["rows"]]
    assert keys[0] is None and keys[1].startswith("iotd_ik_") and keys[2].startswith("iotd_ik_")
    found = await devices_of(api, app)
    room = found["room 1"]
    assert room["dev_eui"] == "a81758fffe0112ab" and room["has_app_key"] and room["tags"] == {"floor": "1",
                                                                                             "wing": "east"}
    assert (room["lat"], room["lon"], room["interval_s"], room["version"]) == (55.67, 12.56, 600, 1)
    assert found["meter"]["metadata"] == {"serial": 7} and found["meter"]["has_ingest_key"]
    assert {r["device_id"] for r in first["rows"]} == {d["id"] for d in found.values()}
    # the ingest key works for the device it was issued to (once the distributor's cache has reloaded)
    for _ in range(50):
        r = await api.client.post("/ingest/http", json={"temperature": 21.5}, headers={"X-API-Key": keys[2]})
        if r.status_code != 401:
            break
        await asyncio.sleep(0.1)
    assert r.status_code == 202, r.text

    audited = await audit_count(api)
    again = await imported(api.client, first_csv(1), application_id=app)
    assert counts(again) == (0, 0, 3, 0) and [r["device_id"] for r in again["rows"]] == [r["device_id"]
                                                                                         for r in first["rows"]]
    assert all(r["ingest_key"] is None for r in again["rows"])
    assert (await devices_of(api, app))["room 1"]["version"] == 1 and await audit_count(api) == audited


async def test_changed_rows_are_updated_and_left_out_columns_kept(api: Api) -> None:
    _, app = await org_and_app(api, "Odense")
    await imported(api.client, first_csv(2), application_id=app)
    before = await devices_of(api, app)
    audited = await audit_count(api)
    changed = ("name,kind,dev_eui,imei,decoder,tags,app_key\n"
               "room 1.12,lorawan,a81758fffe0212ab,,elsys,floor=2,\n"           # renamed, tags changed, key kept
               f"meter,nbiot,,{imei(2)},json,,\n"                               # same as stored
               "gateway,http,,,,,\n")                                           # decoder cleared
    result = await imported(api.client, changed, application_id=app)
    assert statuses(result) == [(2, "updated"), (3, "unchanged"), (4, "updated")]
    after = {d["id"]: d for d in (await devices_of(api, app)).values()}
    room = after[before["room 1"]["id"]]
    assert room["name"] == "room 1.12" and room["tags"] == {"floor": "2"} and room["version"] == 2
    assert (room["lat"], room["interval_s"], room["has_app_key"]) == (55.67, 600, True)   # not in the file: kept
    assert after[before["gateway"]["id"]]["decoder"] is None
    assert await audit_count(api) == audited + 2
    log = (await api.client.get("/api/v1/audit-log", params={"resource_id": room["id"]})).json()["items"]
    assert log[0]["action"] == "update" and log[0]["before"]["name"] == "room 1" and log[0]["after"]["name"] == (
        "room 1.12")

    assert api.service.pool is not None
    new_key = "ffeeddccbbaa99887766554433221100"
    rekeyed = await imported(api.client, f"name,kind,dev_eui,app_key\nroom 1.12,lorawan,a81758fffe0212ab,{new_key}\n")
    assert statuses(rekeyed) == [(2, "updated")]
    stored = await api.service.pool.fetchval("SELECT app_key_enc FROM devices WHERE id = $1", room["id"])
    assert api.service.box.decrypt(stored) == new_key and new_key not in str(rekeyed)


async def test_bad_rows_are_reported_by_line_and_the_rest_imported(api: Api) -> None:
    org, app = await org_and_app(api, "Vejle")
    other_app = (await api.create("applications", {"organization_id": org, "name": "other"}))["id"]
    await imported(api.client, "name,kind,dev_eui\nthere,lorawan,00000000000000a1\n", application_id=other_app)
    text = ("name,kind,application_id,dev_eui,imei,decoder\n"
            "good,lorawan,,00000000000000b1,,\n"                                       # 2
            "bad eui,lorawan,,xyz,,\n"                                                 # 3
            "twice,lorawan,,00000000000000B1,,\n"                                      # 4
            "no decoder,lorawan,,00000000000000b2,,no-such\n"                          # 5
            f"moved,lorawan,{app},00000000000000a1,,\n"                                # 6
            f"lost,lorawan,00000000-0000-0000-0000-000000000001,00000000000000b3,,\n"  # 7
            "kind,http,,,,\n"                                                          # 8: no application
            "\n"                                                                       # 9
            f"good meter,nbiot,{app},,{IMEI[:-1]}0,\n")                                # 10: bad check digit
    result = await imported(api.client, text)
    assert counts(result) == (0, 0, 0, 8)
    result = await imported(api.client, text, application_id=app)
    reasons = {r["line"]: r["reason"] for r in result["rows"] if r["status"] == "error"}
    assert reasons == {
        3: "dev_eui must be 16 hex characters, got 'xyz'",
        4: "dev_eui 00000000000000b1 is also on line 2",
        5: "no decoder 'no-such'; see GET /api/v1/decoders",
        6: f"dev_eui 00000000000000a1 is in application {other_app}; import does not move devices between"
           " applications",
        7: "application not found",
        10: "imei must be 15 digits with a valid check digit, got '490154203237510'",
    }
    assert [line for line, status in statuses(result) if status == "created"] == [2, 8]
    assert counts(result) == (2, 0, 0, 6)


async def test_another_organizations_device_is_refused_without_details(api: Api) -> None:
    org_a, app_a = await org_and_app(api, "Aalborg")
    org_b, app_b = await org_and_app(api, "Bornholm")
    secret_name = "mayor's office sensor"
    theirs = await imported(api.client, f"name,kind,dev_eui,imei\n{secret_name},lorawan,a000000000000001,\n"
                                        f"their meter,nbiot,,{imei(4)}\n", application_id=app_a)
    async with await org_key(api, org_b) as b:
        result = await imported(b, f"name,kind,dev_eui,imei\nmine,lorawan,A0-00-00-00-00-00-00-01,\n"
                                   f"my meter,nbiot,,{imei(4)}\n", application_id=app_b)
    # the same text POST /devices answers for any duplicate: the field, not the value or whose it is
    assert [r["reason"] for r in result["rows"]] == ["dev_eui is already registered", "imei is already registered"]
    async with await org_key(api, org_b) as b:
        r = await b.post("/api/v1/devices", json={"application_id": app_b, "name": "x", "kind": "lorawan",
                                                   "dev_eui": "a000000000000001"})
    assert r.status_code == 409 and r.json() == {"error": "dev_eui is already registered"}
    leaked = str(result) + r.text
    for word in (org_a, app_a, secret_name, "their meter", "a000000000000001", "another organization",
                 *(r["device_id"] for r in theirs["rows"])):
        assert word not in leaked
    assert (await devices_of(api, app_a))[secret_name]["version"] == 1
    # a global key importing into b's application does not reach into a's devices either
    result = await imported(api.client, "name,kind,dev_eui\nmine,lorawan,a000000000000001\n", application_id=app_b)
    assert result["rows"][0]["reason"] == ("dev_eui a000000000000001 is in another organization than the row's"
                                           " application; import does not move devices between organizations")


async def test_an_organization_key_cannot_import_into_another_organization(api: Api) -> None:
    _, app_a = await org_and_app(api, "Esbjerg")
    org_b, app_b = await org_and_app(api, "Fanø")
    row = "name,kind,application_id,dev_eui\nsneaky,lorawan,{},c000000000000001\n"
    async with await org_key(api, org_b) as b:
        r = await post_csv(b, "name,kind,dev_eui\nsneaky,lorawan,c000000000000001\n", application_id=app_a)
        assert r.status_code == 404 and r.json() == {"error": "application not found"}
        result = await imported(b, row.format(app_a))
        assert [(r["status"], r["reason"]) for r in result["rows"]] == [("error", "application not found")]
        assert counts(await imported(b, row.format(app_b))) == (1, 0, 0, 0)
    async with await org_key(api, org_b, "read") as reader:
        r = await post_csv(reader, row.format(app_b))
        assert r.status_code == 403 and "write" in r.json()["error"]
    assert await devices_of(api, app_a) == {}


async def test_export_then_import_round_trips(api: Api) -> None:
    org, app = await org_and_app(api, "Horsens")
    tricky = ("name,kind,dev_eui,app_key,imei,decoder,lat,lon,interval_s,tags,metadata\n"
              f'"Room ""7"", east; 2nd",lorawan,00000000000000d1,{APP_KEY},,elsys,55.1,-12.25,60,'
              '"note=a\\;b;k\\=1=x","{""ø"": [1, null, {""deep"": true}]}"\n'
              f"meter,nbiot,,,{imei(5)},json,,,,,\n"
              "sensor,mqtt,,,,,,,,,\n")
    await imported(api.client, tricky, application_id=app)
    _, elsewhere = await org_and_app(api, "Horsens 2")
    await imported(api.client, "name,kind\nnot mine,http\n", application_id=elsewhere)
    async with await org_key(api, org, "read") as reader:
        r = await reader.get("/api/v1/devices/export")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"] == "attachment; filename=devices.csv"
    assert "not mine" not in r.text and APP_KEY not in r.text and r.text.count("\r\n") == 4
    assert r.text.splitlines()[0] == ("name,kind,application_id,dev_eui,join_eui,app_key,imei,imsi,decoder,lat,lon,"
                                      "interval_s,tags,metadata")
    again = await imported(api.client, r.text)
    assert counts(again) == (0, 0, 3, 0), again
    only_lora = await api.client.get("/api/v1/devices/export", params={"application_id": app, "kind": "lorawan"})
    assert only_lora.text.count("\r\n") == 2 and "elsys" in only_lora.text
    by_decoder = await api.client.get("/api/v1/devices/export", params={"decoder": "json", "application_id": app})
    assert by_decoder.text.count("\r\n") == 2 and "meter" in by_decoder.text


async def test_dry_run_reports_and_stores_nothing(api: Api) -> None:
    _, app = await org_and_app(api, "Silkeborg")
    audited = await audit_count(api)
    result = await imported(api.client, first_csv(6), application_id=app, dry_run="true")
    assert counts(result) == (3, 0, 0, 0) and result["dry_run"] is True
    assert all(r["ingest_key"] is None for r in result["rows"])
    assert await devices_of(api, app) == {} and await audit_count(api) == audited
    assert counts(await imported(api.client, first_csv(6), application_id=app)) == (3, 0, 0, 0)


@pytest.mark.parametrize(("body", "headers", "words"), [
    (b"", {}, "header"),
    (b"name,kind,colour\nx,http,red\n", {}, "unknown column 'colour'"),
    (b"name,kind\n" + b"x,http\n" * 50_001, {}, "more than 50000 rows"),
    ("name,kind\nmåler,http\n".encode("cp1252"), {}, "not utf-8 text"),
    (b"name,kind\nx,http\n", {"Content-Type": "text/csv; charset=no-such"}, "unknown charset"),
])
async def test_file_problems_are_422(api: Api, body: bytes, headers: dict[str, str], words: str) -> None:
    r = await api.client.post("/api/v1/devices/import", content=body, headers={"Content-Type": "text/csv",
                                                                               **headers})
    assert r.status_code == 422 and words in r.json()["error"], r.text


async def test_a_file_over_20_mib_is_413_before_it_is_read(api: Api) -> None:
    r = await api.client.post("/api/v1/devices/import", content=b"name,kind\n" + b"x" * (20 * 2**20),
                              headers={"Content-Type": "text/csv"})
    assert r.status_code == 413 and "20 MiB" in r.json()["error"], r.text


async def test_a_declared_charset_is_honoured(api: Api) -> None:
    _, app = await org_and_app(api, "Tønder")
    r = await api.client.post("/api/v1/devices/import", content="name;kind\nmåler;http\n".encode("cp1252"),
                              params={"application_id": app},
                              headers={"Content-Type": "text/csv; charset=windows-1252"})
    assert r.status_code == 200 and counts(r.json()) == (1, 0, 0, 0)
    assert "måler" in await devices_of(api, app)


@pytest.mark.perf
async def test_import_benchmark_smoke(api: Api) -> None:
    _, app = await org_and_app(api, "Benchmark")
    new_s, again_s = await bench_run(api, app, 200)
    assert new_s > 0 and again_s > 0
