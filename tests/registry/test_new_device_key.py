"""A device's ingest key works from the moment the API hands it out: a newcomer who creates an HTTP
device and sends its first message at once gets 202, not 401 (the README walk-through did that)."""

from __future__ import annotations

import httpx

from tests.support.api import Api


async def test_a_new_devices_key_is_accepted_at_once(api: Api) -> None:
    org = await api.create("organizations", {"name": "first hour"})
    app = await api.create("applications", {"organization_id": org["id"], "name": "wells"})
    async with httpx.AsyncClient(base_url=api.base_url, timeout=10) as device:
        for i in range(5):      # each one sent right after the create answered
            created = await api.create("devices", {"application_id": app["id"], "name": f"gauge {i}",
                                                   "kind": "http", "decoder": "json"})
            r = await device.post("/ingest/http", json={"water_level": 1.25},
                                  headers={"X-API-Key": created["ingest_key"]})
            assert r.status_code == 202, (i, r.text)
