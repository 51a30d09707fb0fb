"""Reading the message history through the API (issue 17): pages by cursor, time ranges, retention on
applications. Real PostgreSQL and HTTP; the stored rows are written here the way the store writes them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson

from distributor.history import COLUMNS
from registry.history_partitions import ensure, maintain
from tests.support.api import Api

START = datetime(2026, 11, 20, tzinfo=UTC)


async def seed(api: Api, retention: int = 30, n: int = 250) -> tuple[str, list[str]]:
    """A device with ``n`` stored messages a minute apart from START; (device id, ids oldest first)."""
    org = (await api.create("organizations", {"name": f"o-{uuid.uuid4().hex[:6]}"}))["id"]
    app = (await api.create("applications", {"organization_id": org, "name": "a", "retention_days": retention}))["id"]
    device = (await api.create("devices", {"application_id": app, "name": "m", "kind": "http"}))["id"]
    ids = [str(uuid.uuid4()) for _ in range(n)]
    rows = [(retention, START + timedelta(minutes=k), ids[k], device, app, org, 1, b"\x01",
             orjson.dumps({"id": ids[k], "n": k}), ["temperature"], [float(k)]) for k in range(n)]
    assert api.service.pool is not None
    async with api.service.pool.acquire() as conn, conn.transaction():
        await ensure(conn, {(retention, r[1].date()) for r in rows})
        await conn.copy_records_to_table("messages", records=rows, columns=COLUMNS)
    return device, ids


async def test_pages_walk_back_in_time_by_cursor(api: Api) -> None:
    device, ids = await seed(api)
    span = {"from": START.isoformat(), "to": (START + timedelta(days=1)).isoformat()}
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {**span, "limit": 100, **({"cursor": cursor} if cursor else {})}
        r = await api.client.get(f"/api/v1/devices/{device}/messages", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        seen += [m["id"] for m in page["items"]]
        pages += 1
        cursor = page["next"]
        if cursor is None:
            break
    assert pages == 3 and seen == ids[::-1]                 # newest first, each once, nothing skipped


async def test_the_range_is_from_inclusive_to_exclusive(api: Api) -> None:
    device, ids = await seed(api, n=10)
    r = await api.client.get(f"/api/v1/devices/{device}/messages", params={
        "from": (START + timedelta(minutes=2)).isoformat(), "to": (START + timedelta(minutes=5)).isoformat()})
    assert [m["id"] for m in r.json()["items"]] == ids[2:5][::-1]
    default = await api.client.get(f"/api/v1/devices/{device}/messages")    # the last day: these are older
    assert default.json() == {"items": [], "next": None}


async def test_a_message_stored_twice_is_answered_once(api: Api) -> None:
    device, ids = await seed(api, n=3)
    assert api.service.pool is not None
    await api.service.pool.execute(
        "INSERT INTO messages SELECT retention_days, received_at + interval '1 second', id, device_id,"
        " application_id, organization_id, f_port, payload, body, names, vals FROM messages WHERE id = $1", ids[1])
    r = await api.client.get(f"/api/v1/devices/{device}/messages", params={"from": START.isoformat(),
                                                                          "to": "2026-11-21T00:00:00Z"})
    assert [m["id"] for m in r.json()["items"]] == ids[::-1]


async def test_bad_ranges_and_cursors_say_what_to_fix(api: Api) -> None:
    device, _ = await seed(api, n=1)
    url = f"/api/v1/devices/{device}/messages"
    backwards = await api.client.get(url, params={"from": "2026-11-21T00:00:00Z", "to": "2026-11-20T00:00:00Z"})
    assert backwards.status_code == 422 and "from: must be before to" in backwards.text
    forged = await api.client.get(url, params={"cursor": "not-a-cursor"})
    assert forged.status_code == 422 and "cursor" in forged.text
    missing = await api.client.get(f"/api/v1/devices/{uuid.uuid4()}/messages")
    assert missing.status_code == 404


async def test_retention_is_set_per_application(api: Api) -> None:
    org = (await api.create("organizations", {"name": f"o-{uuid.uuid4().hex[:6]}"}))["id"]
    app = await api.create("applications", {"organization_id": org, "name": "default"})
    assert app["retention_days"] == 30
    r = await api.client.patch(f"/api/v1/applications/{app['id']}", json={"retention_days": 0})
    assert r.status_code == 200 and r.json()["retention_days"] == 0
    too_long = await api.client.patch(f"/api/v1/applications/{app['id']}", json={"retention_days": 4000})
    assert too_long.status_code == 422 and "retention_days" in too_long.text


async def test_measurements_are_bucketed_in_postgresql(api: Api) -> None:
    device, ids = await seed(api, n=150)                       # temperature = k at START + k minutes
    assert api.service.pool is not None
    await api.service.pool.execute(                            # stored twice: still one reading
        "INSERT INTO messages SELECT retention_days, received_at, id, device_id, application_id, organization_id,"
        " f_port, payload, body, names, vals FROM messages WHERE id = $1", ids[0])
    span = {"from": START.isoformat(), "to": (START + timedelta(hours=3)).isoformat()}
    r = await api.client.get(f"/api/v1/devices/{device}/measurements", params={**span, "every": "1h"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["every_s"] == 3600 and list(body["series"]) == ["temperature"]
    hours = body["series"]["temperature"]
    assert [(b["min"], b["max"], b["avg"], b["count"]) for b in hours] == [
        (0, 59, 29.5, 60), (60, 119, 89.5, 60), (120, 149, 134.5, 30)]
    assert hours[1]["at"].startswith("2026-11-20T01:00:00")
    other = await api.client.get(f"/api/v1/devices/{device}/measurements", params={**span, "name": "humidity"})
    assert other.json()["series"] == {}


async def test_measurement_buckets_say_what_to_fix(api: Api) -> None:
    device, _ = await seed(api, n=1)
    url = f"/api/v1/devices/{device}/measurements"
    assert (await api.client.get(url, params={"every": "15 minutes"})).status_code == 422
    assert (await api.client.get(url, params={"every": "0m"})).status_code == 422
    year = {"from": "2025-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z", "every": "1m"}
    too_many = await api.client.get(url, params=year)
    assert too_many.status_code == 422 and "buckets" in too_many.text


async def stored_count(api: Api, device: str) -> int:
    assert api.service.pool is not None
    return int(await api.service.pool.fetchval("SELECT count(*) FROM messages WHERE device_id = $1", device))


async def test_deleting_a_device_erases_its_history_when_asked_and_says_so(api: Api) -> None:
    kept, _ = await seed(api, n=5)
    r = await api.client.delete(f"/api/v1/devices/{kept}")              # not personal data: kept by default
    assert r.status_code == 204 and await stored_count(api, kept) == 5
    erased, _ = await seed(api, n=7)
    r = await api.client.delete(f"/api/v1/devices/{erased}", params={"erase_history": "true"})
    assert r.status_code == 204 and await stored_count(api, erased) == 0
    log = await api.client.get("/api/v1/audit-log", params={"resource": "device", "limit": 1000})
    rows = [e for e in log.json()["items"] if e["resource_id"] == erased and e["action"] == "erase-history"]
    assert len(rows) == 1 and rows[0]["after"] == {"devices": 1, "messages_erased": 7}


async def test_personal_data_is_kept_briefly_and_erased_with_its_application(api: Api) -> None:
    org = (await api.create("organizations", {"name": f"o-{uuid.uuid4().hex[:6]}"}))["id"]
    personal = await api.create("applications", {"organization_id": org, "name": "parking", "personal_data": True})
    assert personal["retention_days"] == 7
    chosen = await api.create("applications", {"organization_id": org, "name": "p2", "personal_data": True,
                                                "retention_days": 14})
    assert chosen["retention_days"] == 14
    device = (await api.create("devices", {"application_id": personal["id"], "name": "bay 1", "kind": "http"}))["id"]
    assert api.service.pool is not None
    now = datetime.now(UTC)                                # within the retention: the maintenance keeps it
    async with api.service.pool.acquire() as conn, conn.transaction():
        await ensure(conn, {(7, now.date())})
        await conn.copy_records_to_table("messages", columns=COLUMNS, records=[
            (7, now, str(uuid.uuid4()), device, personal["id"], org, 1, b"", b"{}", [], [])])
    r = await api.client.delete(f"/api/v1/applications/{personal['id']}")   # personal data: erased by default
    assert r.status_code == 204 and await stored_count(api, device) == 0
    # a message that was still on its way into the store is erased again by the maintenance
    async with api.service.pool.acquire() as conn:
        await conn.copy_records_to_table("messages", columns=COLUMNS, records=[
            (7, now, str(uuid.uuid4()), device, personal["id"], org, 1, b"", b"{}", [], [])])
        done = await maintain(conn)
    assert done.erased == 1 and await stored_count(api, device) == 0


async def test_measurements_export_as_csv_streamed(api: Api) -> None:
    device, ids = await seed(api, n=3)
    assert api.service.pool is not None
    await api.service.pool.execute("UPDATE devices SET name = '=HYPERLINK(1)' WHERE id = $1", device)
    await api.service.pool.execute(                            # stored twice: exported once
        "INSERT INTO messages SELECT retention_days, received_at + interval '1 second', id, device_id,"
        " application_id, organization_id, f_port, payload, body, names, vals FROM messages WHERE id = $1", ids[0])
    span = {"from": START.isoformat(), "to": (START + timedelta(hours=1)).isoformat()}
    r = await api.client.get("/api/v1/messages/export.csv", params={**span, "device_id": device})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    lines = r.text.split("\r\n")
    assert lines[0] == "received_at,message_id,device_id,device_name,dev_eui,measurement,value"
    rows = [line.split(",") for line in lines[1:] if line]
    assert [row[1] for row in rows] == ids                     # oldest first, each message once
    assert {row[3] for row in rows} == {"'=HYPERLINK(1)"}      # a formula is not run by a spreadsheet
    assert [(row[5], float(row[6])) for row in rows] == [("temperature", 0.0), ("temperature", 1.0),
                                                         ("temperature", 2.0)]


async def test_the_export_says_what_to_fix_and_keeps_to_the_tenant(api: Api) -> None:
    device, _ = await seed(api, n=1)
    assert api.service.pool is not None
    await api.service.pool.execute("""UPDATE devices SET tags = '{"site": "x"}' WHERE id = $1""", device)
    url = "/api/v1/messages/export.csv"
    hour = {"from": START.isoformat(), "to": (START + timedelta(hours=1)).isoformat()}
    mine = await api.client.get(url, params={"tag": "site=x", **hour})
    assert device in mine.text
    assert (await api.client.get(url)).status_code == 422                        # which messages?
    year_and_more = {"from": "2024-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z", "device_id": device}
    assert (await api.client.get(url, params=year_and_more)).status_code == 422
    assert (await api.client.get(url, params={"tag": "no-equals-sign"})).status_code == 422
    org = (await api.create("organizations", {"name": f"o-{uuid.uuid4().hex[:6]}"}))["id"]
    key = (await api.create("api-keys", {"organization_id": org, "name": "r", "role": "read"}))["key"]
    async with api.as_key(key) as other:
        assert (await other.get(url, params={"device_id": device})).status_code == 404
        tagged = await other.get(url, params={"tag": "site=x", **hour})
        assert tagged.status_code == 200 and tagged.text.count("\r\n") == 1     # the header only
