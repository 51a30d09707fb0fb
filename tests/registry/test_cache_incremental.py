"""A change to a few devices reaches a running cache as those devices, not as a whole reload (issue 16,
item 4: at a million devices a whole reload took 19 s and twice the memory, so one change took 19 s to
reach every instance and the API's "applied at once" wait gave up after 2 s). Real PostgreSQL, NOTIFY
from migration 0009's triggers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg

from registry import store
from registry.cache import RegistryCache
from registry.installation import open_secret_box
from registry.secrets import hash_token
from tests.support.scenario import SECRET_KEY


async def until(check: Callable[[], bool], seconds: float = 3.0) -> None:
    async with asyncio.timeout(seconds):
        while not check():
            await asyncio.sleep(0.01)


async def test_device_changes_are_applied_in_place_and_bulk_ones_reload(migrated_pool: asyncpg.Pool) -> None:
    async with migrated_pool.acquire() as conn:
        box = await open_secret_box(conn, SECRET_KEY)
        org = await store.create_organization(conn, "Incremental City")
        app = await store.create_application(conn, org, "Sensors")
        lora, _ = await store.create_device(conn, box, application_id=app, name="bay-1", dev_eui="0a00000000000001")
        nb, key = await store.create_device(conn, box, application_id=app, name="meter", kind="nbiot",
                                            imei="490154203237518")
    cache = RegistryCache(migrated_pool, box)
    await cache.start()
    try:
        reloads = cache.reloads
        assert key is not None and cache.snapshot.by_ingest_key[hash_token(key)].id == nb
        async with migrated_pool.acquire() as conn:
            await conn.execute("UPDATE devices SET name = 'bay-1b', dev_eui = '0a00000000000002' WHERE id = $1", lora)
        await until(lambda: cache.snapshot.devices[lora].name == "bay-1b")
        assert "0a00000000000001" not in cache.snapshot.by_dev_eui
        assert cache.snapshot.by_dev_eui["0a00000000000002"].id == lora
        assert cache.snapshot.devices[lora].organization_name == "Incremental City"

        async with migrated_pool.acquire() as conn:   # a rotated key: the old one stops working
            await conn.execute("UPDATE devices SET ingest_key_hash = $2 WHERE id = $1", nb, hash_token("new-key"))
        await until(lambda: hash_token(key) not in cache.snapshot.by_ingest_key)
        assert cache.snapshot.by_ingest_key[hash_token("new-key")].id == nb

        async with migrated_pool.acquire() as conn:
            await conn.execute("DELETE FROM devices WHERE id = $1", lora)
        await until(lambda: lora not in cache.snapshot.devices)
        assert "0a00000000000002" not in cache.snapshot.by_dev_eui
        assert cache.reloads == reloads and cache.device_updates >= 3   # no whole reload for any of these

        async with migrated_pool.acquire() as conn:   # an import-sized statement: a whole reload
            await conn.execute(
                "INSERT INTO devices (application_id, name, kind, dev_eui)"
                " SELECT $1, 'bulk-' || g, 'lorawan', lpad(to_hex(4096 + g), 16, '0') FROM generate_series(1, 201) g",
                app)
        await until(lambda: cache.reloads > reloads)
        assert len([d for d in cache.snapshot.devices.values() if d.name.startswith("bulk-")]) == 201

        async with migrated_pool.acquire() as conn:   # the API's wait names the device: no reload needed
            await conn.execute("UPDATE devices SET name = 'meter-2' WHERE id = $1", nb)
        reloads = cache.reloads
        assert await cache.caught_up(2.0, [nb])
        assert cache.snapshot.devices[nb].name == "meter-2" and cache.reloads == reloads
    finally:
        await cache.close()
        async with migrated_pool.acquire() as conn:
            await conn.execute("DELETE FROM organizations WHERE id = $1", org)


async def test_closing_right_after_the_listener_was_lost_does_not_raise(migrated_pool: asyncpg.Pool) -> None:
    """A PostgreSQL restart ends the LISTEN connection; asyncpg detaches a pooled connection it finds closed,
    and a detached one raises on every call. Shutting down before the cache listened again must still work."""
    async with migrated_pool.acquire() as conn:
        box = await open_secret_box(conn, SECRET_KEY)
    cache = RegistryCache(migrated_pool, box, debounce_s=5.0)    # it will not listen again during the test
    await cache.start()
    async with migrated_pool.acquire() as conn:
        await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                           " WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()")
    await asyncio.sleep(0.3)
    await cache.close()     # raised InterfaceError ("released back to the pool") before
