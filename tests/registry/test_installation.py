"""The installation key (scrypt with a stored salt) and the one-time start-up steps, on real PostgreSQL:
data written the way iotd stored it before (SHA-256 key, credentials in ``consumers.url``) is read back."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

import asyncpg
import orjson
import pytest
from cryptography.fernet import Fernet, InvalidToken

from distributor.service import Service
from distributor.settings import Settings
from registry import store
from registry.cache import Snapshot, load_snapshot
from registry.db import create_pool, migrate
from registry.installation import open_secret_box
from registry.secrets import KdfParams, SecretBox, derive_fernet, legacy_fernet
from tests.support.database import create_database, drop_database
from tests.support.scenario import LOOPBACK

KEY = "installation-test-key-0123456789"
MQTT_URL = "mqtt://iot:broker-pa55@127.0.0.1:1883/city/{device}"
HOOK_URL = "https://dept.example/hook?token=hook-token-9"


@pytest.fixture
async def database() -> AsyncIterator[str]:
    url = await create_database("iotd_install")
    yield url
    await drop_database(url)


@pytest.fixture
async def pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(database)
    async with p.acquire() as conn:
        await migrate(conn)
    yield p
    await p.close()


async def stored_the_old_way(pool: asyncpg.Pool) -> dict[str, str]:
    """What iotd 0.1 wrote: Fernet under SHA-256(IOTD_SECRET_KEY), and URLs with their credentials in clear."""
    old = legacy_fernet(KEY)
    async with pool.acquire() as conn:
        org = await store.create_organization(conn, "old")
        app = await store.create_application(conn, org, "a")
        device = await conn.fetchval(
            "INSERT INTO devices (application_id, name, kind, dev_eui, app_key_enc) VALUES ($1, 'd', 'lorawan',"
            " '0011223344556677', $2) RETURNING id", app, old.encrypt(b"00112233445566778899aabbccddeeff"))
        mqtt = await conn.fetchval(
            "INSERT INTO consumers (organization_id, name, kind, url, secret_enc) VALUES ($1, 'm', 'mqtt', $2, $3)"
            " RETURNING id", org, MQTT_URL, old.encrypt(b"signing-secret"))
        hook = await conn.fetchval(
            "INSERT INTO consumers (organization_id, name, kind, url, headers_enc) VALUES ($1, 'h', 'http', $2, $3)"
            " RETURNING id", org, HOOK_URL, old.encrypt(orjson.dumps({"Authorization": "Bearer t-1"})))
    return {"device": str(device), "mqtt": str(mqtt), "hook": str(hook)}


async def ciphertexts(pool: asyncpg.Pool) -> list[bytes]:
    rows = await pool.fetch("SELECT secret_enc AS t FROM consumers UNION ALL SELECT headers_enc FROM consumers"
                            " UNION ALL SELECT url_enc FROM consumers UNION ALL SELECT app_key_enc FROM devices")
    return sorted(bytes(r["t"]) for r in rows if r["t"] is not None)


async def test_old_data_is_re_encrypted_and_url_credentials_moved_once(pool: asyncpg.Pool) -> None:
    ids = await stored_the_old_way(pool)
    async with pool.acquire() as conn:
        box = await open_secret_box(conn, KEY)
    snapshot = await _snapshot(pool, box)
    mqtt, hook = snapshot.consumers[ids["mqtt"]], snapshot.consumers[ids["hook"]]
    assert mqtt.enabled and mqtt.secret == "signing-secret" and mqtt.target_url == MQTT_URL
    assert mqtt.url == "mqtt://***:***@127.0.0.1:1883/city/{device}" and "pa55" not in repr(mqtt)
    assert hook.headers == {"Authorization": "Bearer t-1"} and hook.target_url == HOOK_URL
    assert hook.url == "https://dept.example/hook?token=***"
    device_key = await pool.fetchval("SELECT app_key_enc FROM devices WHERE id = $1", ids["device"])
    assert box.decrypt(device_key) == "00112233445566778899aabbccddeeff"

    after = await ciphertexts(pool)
    assert len(after) == 5                                  # secret, headers, two url_enc, app key
    for token in after:                                     # nothing is readable with the old key any more
        with pytest.raises(InvalidToken):
            legacy_fernet(KEY).decrypt(token)
    stored = "".join(r["url"] for r in await pool.fetch("SELECT url FROM consumers"))
    assert "broker-pa55" not in stored and "hook-token-9" not in stored
    row = await pool.fetchrow("SELECT * FROM installation")
    assert row["kdf"] == "scrypt" and len(row["kdf_salt"]) == 16 and row["kdf_params"] == KdfParams().as_dict()
    assert row["key_check"] is not None and row["secrets_rekeyed_at"] and row["consumer_urls_moved_at"]

    async with pool.acquire() as conn:                      # the next start finds everything done
        again = await open_secret_box(conn, KEY)
    assert await ciphertexts(pool) == after
    assert again.decrypt(device_key) == "00112233445566778899aabbccddeeff"


async def test_a_wrong_key_is_told_at_start_and_changes_nothing(pool: asyncpg.Pool) -> None:
    await stored_the_old_way(pool)
    before = await ciphertexts(pool)
    async with pool.acquire() as conn:
        with pytest.raises(ValueError, match="cannot be decrypted: is IOTD_SECRET_KEY the one it was stored with"):
            await open_secret_box(conn, "not-the-installation-key")
    assert await ciphertexts(pool) == before
    assert await pool.fetchval("SELECT secrets_rekeyed_at FROM installation") is None
    async with pool.acquire() as conn:
        await open_secret_box(conn, KEY)                     # the right key still works afterwards
        with pytest.raises(ValueError, match="is IOTD_SECRET_KEY the one it was stored with"):
            await open_secret_box(conn, "not-the-installation-key")
        with pytest.raises(ValueError, match="at least 16 characters"):
            await open_secret_box(conn, "short")


async def test_instances_starting_together_migrate_once(pool: asyncpg.Pool) -> None:
    ids = await stored_the_old_way(pool)
    conns = [await pool.acquire() for _ in range(3)]
    try:
        boxes = await asyncio.gather(*(open_secret_box(c, KEY) for c in conns))
    finally:
        for c in conns:
            await pool.release(c)
    secret = await pool.fetchval("SELECT secret_enc FROM consumers WHERE id = $1", ids["mqtt"])
    assert {b.decrypt(secret) for b in boxes} == {"signing-secret"}
    assert await pool.fetchval("SELECT count(*) FROM consumers WHERE url LIKE '%pa55%'") == 0


async def test_the_service_starts_on_old_data_and_shows_only_masked_urls(database: str, pool: asyncpg.Pool) -> None:
    ids = await stored_the_old_way(pool)
    service = Service(Settings(database_url=database, mqtt_url=None, http_port=0, http_host="127.0.0.1", secret_key=KEY,
                               consumer_allowed_networks=LOOPBACK))
    await service.start()
    try:
        consumer = service.cache.snapshot.consumers[ids["mqtt"]]
        assert consumer.target_url == MQTT_URL and consumer.secret == "signing-secret"
        assert consumer.url == "mqtt://***:***@127.0.0.1:1883/city/{device}"
        assert "pa55" not in await pool.fetchval("SELECT url FROM consumers WHERE id = $1", ids["mqtt"])
    finally:
        await service.stop()


def test_the_key_is_scrypt_with_the_salt_and_costs_tens_of_milliseconds() -> None:
    salt = os.urandom(16)
    started = time.perf_counter()
    key = derive_fernet(KEY, salt, KdfParams())
    spent = time.perf_counter() - started
    token = key.encrypt(b"x")
    assert derive_fernet(KEY, salt, KdfParams()).decrypt(token) == b"x"
    for other in (derive_fernet(KEY, os.urandom(16), KdfParams()), legacy_fernet(KEY)):
        with pytest.raises(InvalidToken):
            other.decrypt(token)
    assert 0.01 < spent < 2.0, spent
    assert isinstance(key, Fernet)


async def _snapshot(pool: asyncpg.Pool, box: SecretBox) -> Snapshot:
    async with pool.acquire() as conn:
        return await load_snapshot(conn, box)
