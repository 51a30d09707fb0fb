"""The registry cache holds a million devices in well under 1 GiB (issue 16, item 4): values many devices
share are one object, and devices are read through a cursor in batches. Before, every device carried its
own copy of its application id, kind and decoder and an empty tag dict of its own, and the whole table was
fetched at once (156 MiB per 100,000 devices, now ~90 MiB: `python -m tests.perf --only registry`)."""

from __future__ import annotations

import asyncpg

from registry import store
from registry.cache import DEVICE_BATCH, NO_TAGS, load_snapshot
from registry.installation import open_secret_box
from tests.support.scenario import SECRET_KEY


async def test_devices_share_what_they_have_in_common_and_all_load_past_a_batch(
        migrated_pool: asyncpg.Pool) -> None:
    n = DEVICE_BATCH + 7                                   # more than one cursor batch
    async with migrated_pool.acquire() as conn:
        box = await open_secret_box(conn, SECRET_KEY)
        org = await store.create_organization(conn, "Shared City")
        app = await store.create_application(conn, org, "Many meters")
        await store.create_device(conn, box, application_id=app, name="tagged", dev_eui="aa00000000000001",
                                  decoder="elsys", tags={"room": "1.12"})
        await conn.execute(
            "INSERT INTO devices (application_id, name, kind, decoder, dev_eui)"
            " SELECT $1, 'meter-' || g, 'lorawan', 'elsys', lpad(to_hex(g), 16, '0') FROM generate_series(1, $2) g",
            app, n)
        try:
            snap = await load_snapshot(conn, box)
        finally:
            await conn.execute("DELETE FROM organizations WHERE id = $1", org)
    mine = [d for d in snap.devices.values() if d.application_id == app]
    assert len(mine) == n + 1 and len([d for d in mine if d.dev_eui in snap.by_dev_eui]) == n + 1
    first, second = [d for d in mine if d.name.startswith("meter-")][:2]
    assert first.application_id is second.application_id is snap.applications[app].id
    assert first.kind is second.kind and first.decoder is second.decoder
    assert first.tags is NO_TAGS and second.tags is NO_TAGS
    tagged = next(d for d in mine if d.name == "tagged")
    assert tagged.tags == {"room": "1.12"} and tagged.tags is not NO_TAGS
