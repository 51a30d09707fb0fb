"""Messages name the organization and application (issue 15): the names ride on the cached device record,
read once per cache load, and follow a rename through the cache's reload, never a per-message query."""

from __future__ import annotations

import asyncio

import asyncpg

from distributor.envelope import build_message, message_id
from distributor.model import Message
from registry import store
from registry.cache import RegistryCache
from registry.installation import open_secret_box
from registry.records import Device
from tests.support.scenario import SECRET_KEY


async def _until(check: object, seconds: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not check() and loop.time() < deadline:  # type: ignore[operator]
        await asyncio.sleep(0.01)


def _message(device: Device) -> dict[str, object]:
    return build_message(msg_id=message_id("names"), received_at=1795341600.0, measured_at=None, device=device,
                         network={"kind": "lorawan", "dev_eui": device.dev_eui}, payload=b"\x01",
                         decoder_version=None, result=None, measurements=[])


async def test_cached_devices_carry_names_that_follow_a_rename(migrated_pool: asyncpg.Pool) -> None:
    async with migrated_pool.acquire() as conn:
        box = await open_secret_box(conn, SECRET_KEY)
        org = await store.create_organization(conn, "Names City")
        app = await store.create_application(conn, org, "Parking sensors")
        dev, _ = await store.create_device(conn, box, application_id=app, name="bay-17", dev_eui="0102030405060718")
    cache = RegistryCache(migrated_pool, box)
    await cache.start()
    try:
        device = cache.snapshot.devices[dev]
        assert (device.organization_name, device.application_name) == ("Names City", "Parking sensors")
        ref = Message.model_validate(_message(device)).device
        assert (ref.organization, ref.organization_name) == (org, "Names City")
        assert (ref.application, ref.application_name) == (app, "Parking sensors")

        async with migrated_pool.acquire() as conn:
            await conn.execute("UPDATE organizations SET name = 'Renamed City' WHERE id = $1", org)
            await conn.execute("UPDATE applications SET name = 'Street parking' WHERE id = $1", app)
        await _until(lambda: cache.snapshot.devices[dev].organization_name == "Renamed City"
                     and cache.snapshot.devices[dev].application_name == "Street parking")
        renamed = _message(cache.snapshot.devices[dev])["device"]
        assert isinstance(renamed, dict)
        assert (renamed["organization_name"], renamed["application_name"]) == ("Renamed City", "Street parking")
    finally:
        await cache.close()
        async with migrated_pool.acquire() as conn:
            await conn.execute("DELETE FROM organizations WHERE id = $1", org)
