"""Migrations and the registry cache on real PostgreSQL."""

from __future__ import annotations

import asyncio

import asyncpg
from cryptography.fernet import Fernet

from registry import store
from registry.cache import RegistryCache
from registry.db import create_pool, migrate
from registry.installation import open_secret_box
from registry.secrets import SecretBox
from registry.store import RegistryError
from tests.support.database import create_database, drop_database
from tests.support.scenario import SECRET_KEY

KEY = "cache-test-key-0123456789"


async def test_migrations_apply_once_even_when_run_concurrently() -> None:
    url = await create_database("iotd_mig")
    try:
        conns = [await asyncpg.connect(url) for _ in range(3)]
        results = await asyncio.gather(*(migrate(c) for c in conns))
        assert sorted(bool(r) for r in results) == [False, False, True]  # one applied, two found it done
        assert [name for r in results for name in r].count("0001_core.sql") == 1
        assert await migrate(conns[0]) == []
        for c in conns:
            await c.close()
    finally:
        await drop_database(url)


async def test_cache_follows_registry_changes_within_a_second() -> None:
    database_url = await create_database("iotd_cache")
    pool = await create_pool(database_url)
    async with pool.acquire() as conn:
        await migrate(conn)
        box = await open_secret_box(conn, KEY)
    cache = RegistryCache(pool, box)
    await cache.start()
    try:
        async with pool.acquire() as conn:
            org = await store.create_organization(conn, "cache-org")
            app = await store.create_application(conn, org, "app")
            await store.create_device(conn, box, application_id=app, name="d", dev_eui="AA-BB-CC-DD-EE-FF-00-11",
                                      decoder="elsys")
            await store.create_consumer(conn, box, organization_id=org, name="c", kind="http", url="http://h",
                                        secret="never-shown", headers={"Authorization": "Bearer t"})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.0
        while "aabbccddeeff0011" not in cache.snapshot.by_dev_eui and loop.time() < deadline:
            await asyncio.sleep(0.01)
        device = cache.snapshot.by_dev_eui["aabbccddeeff0011"]
        assert device.organization_id == org
        consumer = next(iter(c for c in cache.snapshot.consumers.values() if c.name == "c"))
        assert consumer.secret == "never-shown" and consumer.headers == {"Authorization": "Bearer t"}
        assert "never-shown" not in repr(consumer) and "Bearer" not in repr(consumer)
        stored = await pool.fetchval("SELECT secret_enc FROM consumers WHERE id = $1::uuid", consumer.id)
        assert b"never-shown" not in stored
    finally:
        await cache.close()
        await pool.close()
        await drop_database(database_url)


async def test_undecryptable_consumer_is_disabled_not_fatal() -> None:
    database_url = await create_database("iotd_cache")
    pool = await create_pool(database_url)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            box = await open_secret_box(conn, KEY)
            org = await store.create_organization(conn, "o")
            other = SecretBox(Fernet(Fernet.generate_key()))          # a secret stored with another key
            bad = await store.create_consumer(conn, other, organization_id=org, name="bad", kind="http",
                                              url="http://h", secret="x")
            good = await store.create_consumer(conn, box, organization_id=org, name="good", kind="http",
                                               url="http://h", secret="y")
        cache = RegistryCache(pool, box)
        await cache.start()
        await cache.close()
        consumers = cache.snapshot.consumers
        assert consumers[good].enabled and consumers[good].secret == "y"
        assert not consumers[bad].enabled and consumers[bad].secret is None
        assert "cannot be decrypted" in consumers[bad].options["error"]
    finally:
        await pool.close()
        await drop_database(database_url)


async def test_store_rejects_bad_identifiers(database_url: str) -> None:
    pool = await create_pool(database_url)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            box = await open_secret_box(conn, SECRET_KEY)
            org = await store.create_organization(conn, "bad-ids")
            app = await store.create_application(conn, org, "app")
            for kwargs, message in [({"dev_eui": "zz"}, "16 hex"), ({"dev_eui": None}, "needs a dev_eui"),
                                    ({"dev_eui": "0011223344556677", "app_key": "12"}, "32 hex")]:
                try:
                    await store.create_device(conn, box, application_id=app, name="x", **kwargs)  # type: ignore[arg-type]
                except RegistryError as exc:
                    assert message in str(exc)
                else:
                    raise AssertionError(f"{kwargs} was accepted")
    finally:
        await pool.close()
