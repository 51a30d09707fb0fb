"""Previewing a decoder change on stored uplinks (issue 17): real API, real trial worker, real PostgreSQL; the
stored messages are written the way the store writes them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from distributor.history import COLUMNS
from registry.decoder_preview import MAX_PATHS, diff, flatten, summary
from registry.history_partitions import ensure
from tests.support.api import Api

CURRENT = "function decodeUplink(input) { return {data: {distance: input.bytes[0] / 100}}; }"
CANDIDATE = ("function decodeUplink(input) { if (input.bytes[0] === 0) return {errors: ['empty']};"
             " return {data: {distance: input.bytes[0] / 10, unit: 'cm'}}; }")


async def tenant(api: Api, decoder: str) -> tuple[str, str, str, str]:
    """(organization, application, device, write key) with a saved JavaScript decoder on the device."""
    org = (await api.create("organizations", {"name": f"o-{uuid.uuid4().hex[:6]}"}))["id"]
    app = (await api.create("applications", {"organization_id": org, "name": "a"}))["id"]
    await api.create("decoders", {"id": decoder, "organization_id": org, "source": CURRENT})
    device = (await api.create("devices", {"application_id": app, "name": "level", "kind": "http",
                                           "decoder": decoder}))["id"]
    key = (await api.create("api-keys", {"organization_id": org, "name": "w", "role": "write"}))["key"]
    return org, app, device, key


async def store(api: Api, org: str, app: str, device: str, frames: list[int]) -> None:
    """Messages as the service would have delivered them with CURRENT, a minute apart, the last a minute ago."""
    now = datetime.now(UTC)
    rows = []
    for k, byte in enumerate(frames):
        decoded = {"distance": byte / 100}
        body = {"id": str(uuid.uuid4()), "payload": {"raw": "", "decoded": decoded},
                "measurements": [{"name": "distance", "value": byte / 100, "unit": "m"}],
                "decoder": {"errors": []}}
        rows.append((30, now - timedelta(minutes=len(frames) - k), body["id"], device, app, org, 1, bytes([byte]),
                     orjson.dumps(body), ["distance"], [byte / 100]))
    assert api.service.pool is not None
    async with api.service.pool.acquire() as conn, conn.transaction():
        await ensure(conn, {(30, r[1].date()) for r in rows})
        await conn.copy_records_to_table("messages", records=rows, columns=COLUMNS)


async def preview(api: Api, key: str, decoder: str, body: dict[str, Any]) -> Any:
    async with api.as_key(key) as client:
        return await client.post(f"/api/v1/decoders/{decoder}/preview", json=body)


async def test_a_candidate_is_compared_with_what_was_delivered(api: Api) -> None:
    org, app, device, key = await tenant(api, "level-a")
    await store(api, org, app, device, [100, 50, 0])
    r = await preview(api, key, "level-a", {"source": CANDIDATE, "limit": 10})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["candidate"] == "the given source"
    newest = got["messages"][0]                                      # newest first: the 0 byte
    assert newest["diff"] == {"added": [], "removed": ["distance"], "changed": [], "error": "introduced"}
    oldest = got["messages"][-1]
    assert oldest["current"]["decoded"] == {"distance": 1.0}
    assert oldest["candidate"]["data"] == {"distance": 10.0, "unit": "cm"}
    assert oldest["diff"] == {"added": ["unit"], "removed": [], "changed": ["distance"], "error": None}
    assert got["summary"] == {"compared": 3, "changed": 3, "errors_fixed": 0, "errors_introduced": 1,
                              "fields_added": ["unit"], "fields_removed": ["distance"], "fields_changed": ["distance"]}


async def test_the_saved_source_and_a_builtin_are_candidates_too(api: Api) -> None:
    org, app, device, key = await tenant(api, "level-b")
    await store(api, org, app, device, [100])
    same = (await preview(api, key, "level-b", {})).json()
    assert same["candidate"] == "the saved level-b" and same["summary"]["changed"] == 0
    other = await preview(api, key, "level-b", {"builtin": "cayenne-lpp"})
    assert other.status_code == 200 and other.json()["candidate"] == "built-in cayenne-lpp"
    assert other.json()["messages"][0]["candidate"]["errors"]                    # 0x64 is no Cayenne frame


async def test_preview_refusals_say_what_to_fix(api: Api) -> None:
    org, app, device, key = await tenant(api, "level-c")
    await store(api, org, app, device, [7])
    broken = await preview(api, key, "level-c", {"source": "function decodeUplink( {"})
    assert broken.status_code == 422 and "does not compile" in broken.text
    both = await preview(api, key, "level-c", {"source": CURRENT, "builtin": "elsys"})
    assert both.status_code == 422 and "not both" in both.text
    _, _, foreign_device, _ = await tenant(api, "level-d")
    hidden = await preview(api, key, "level-c", {"device_id": foreign_device})
    assert hidden.status_code == 404
    reader = (await api.create("api-keys", {"organization_id": org, "name": "r", "role": "read"}))["key"]
    assert (await preview(api, reader, "level-c", {})).status_code == 403


async def test_another_tenants_stored_uplinks_never_take_part(api: Api) -> None:
    org, app, device, key = await tenant(api, "level-e")
    await store(api, org, app, device, [10])
    other_org, other_app, other_device, _ = await tenant(api, "level-f")
    await api.service.pool.execute("UPDATE devices SET decoder = 'level-e' WHERE id = $1",  # type: ignore[union-attr]
                                   other_device)
    await store(api, other_org, other_app, other_device, [20, 30])
    got = (await preview(api, key, "level-e", {})).json()
    assert [m["device_id"] for m in got["messages"]] == [device]


def test_flatten_and_diff_by_path() -> None:
    assert flatten({"a": {"b": 1}, "c": [2, {"d": 3}], "e": {}}) == {"a.b": 1, "c[0]": 2, "c[1].d": 3, "e": {}}
    assert diff({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}, ["x"], []) == {
        "added": ["c"], "removed": [], "changed": ["b"], "error": "fixed"}
    assert summary([diff({}, {}, [], []), diff({"a": 1}, {}, [], [])])["changed"] == 1


@pytest.mark.parametrize("wide", [{f"k{i}": i for i in range(10_000)}, {"a": [[[[[[[[[[1]]]]]]]]]]}])
def test_a_huge_or_deep_answer_is_bounded(wide: dict[str, Any]) -> None:
    assert len(flatten(wide)) <= MAX_PATHS
