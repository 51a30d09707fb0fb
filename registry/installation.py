"""The installation's secret box, and the one-time start-up steps that need its key.

``open_secret_box(conn, IOTD_SECRET_KEY)`` is the only way to get a ``SecretBox``:

1. the one ``installation`` row holds a random salt and the scrypt cost (created at the first start);
2. the Fernet key is scrypt(IOTD_SECRET_KEY, salt), derived in a thread (~50 ms);
3. steps not yet recorded as done run once, under an advisory lock, in one transaction, so several
   instances starting together do them once and a crash leaves nothing half done:
   * re-encrypt every stored ciphertext (``ENCRYPTED_COLUMNS``) under the derived key; until then a
     ``MultiFernet`` reads both the derived key and iotd's first key (SHA-256 of IOTD_SECRET_KEY);
   * move credentials out of ``consumers.url`` (masked there, whole URL encrypted in ``url_enc``);
   * store a check value, so that a wrong IOTD_SECRET_KEY is told at start-up;
4. the check value is verified: a wrong key stops the start with the same message a failed decryption
   gives ("a stored secret cannot be decrypted: is IOTD_SECRET_KEY the one it was stored with?").

If some old ciphertexts cannot be read with either key (they were written with yet another key) they
are left as they were and counted in the log, as before: their consumers stay disabled. If none of
them can be read, the key is wrong and nothing is changed. Instances of the previous version must be
stopped before the first start of this one: what they encrypt afterwards uses the old key only.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import asyncpg
import structlog
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from registry.consumer_url import has_credentials, mask_url
from registry.secrets import WRONG_KEY, KdfParams, SecretBox, check_key_material, derive_fernet, legacy_fernet

log = structlog.get_logger("iotd.registry.installation")

SECRETS_LOCK = 7_240_006          # pg_advisory_xact_lock key for the one-time steps
ENCRYPTED_COLUMNS = (("consumers", "secret_enc"), ("consumers", "headers_enc"), ("consumers", "url_enc"),
                     ("devices", "app_key_enc"))
_CHECK = b"iotd installation key check"
_BATCH = 5_000


async def open_secret_box(conn: asyncpg.Connection, key_material: str | None) -> SecretBox:
    """The installation's box; runs the pending one-time steps first. Raises ``ValueError`` for a wrong key."""
    key_material = check_key_material(key_material)
    row = await _installation(conn)
    params = KdfParams(**row["kdf_params"])
    fernet = await asyncio.to_thread(derive_fernet, key_material, bytes(row["kdf_salt"]), params)
    if row["key_check"] is not None:
        _verify(fernet, row["key_check"])
    if row["key_check"] is None or row["secrets_rekeyed_at"] is None or row["consumer_urls_moved_at"] is None:
        await _one_time_steps(conn, fernet, legacy_fernet(key_material))
    return SecretBox(fernet)


async def _installation(conn: asyncpg.Connection) -> asyncpg.Record:
    await conn.execute("INSERT INTO installation (kdf, kdf_salt, kdf_params) VALUES ('scrypt', $1, $2)"
                       " ON CONFLICT (id) DO NOTHING", os.urandom(16), KdfParams().as_dict())
    row: asyncpg.Record = await conn.fetchrow("SELECT * FROM installation")
    return row


def _verify(fernet: Fernet, key_check: bytes) -> None:
    try:
        ok = fernet.decrypt(key_check) == _CHECK
    except InvalidToken:
        ok = False
    if not ok:
        raise ValueError(f"{WRONG_KEY} (this installation's secrets were stored with another key)")


async def _one_time_steps(conn: asyncpg.Connection, fernet: Fernet, legacy: Fernet) -> None:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SECRETS_LOCK)
        row = await conn.fetchrow("SELECT * FROM installation FOR UPDATE")
        if row["key_check"] is not None:
            _verify(fernet, row["key_check"])         # another instance did it meanwhile, with its key
        if row["secrets_rekeyed_at"] is None:
            await rekey(conn, SecretBox(MultiFernet([fernet, legacy])))
        if row["consumer_urls_moved_at"] is None:
            await move_url_credentials(conn, SecretBox(fernet))
        await conn.execute("UPDATE installation SET key_check = COALESCE(key_check, $1),"
                           " secrets_rekeyed_at = COALESCE(secrets_rekeyed_at, now()),"
                           " consumer_urls_moved_at = COALESCE(consumer_urls_moved_at, now())",
                           fernet.encrypt(_CHECK))


async def rekey(conn: asyncpg.Connection, box: SecretBox) -> int:
    """Re-encrypt every stored ciphertext with ``box``'s current key; returns how many were re-encrypted."""
    done = failed = 0
    for table, column in ENCRYPTED_COLUMNS:
        rows = await conn.fetch(f"SELECT id, {column} AS token FROM {table} WHERE {column} IS NOT NULL")
        updates: list[tuple[Any, bytes]] = []
        for r in rows:
            try:
                updates.append((r["id"], box.rotate(bytes(r["token"]))))
            except ValueError:
                failed += 1
        await _write(conn, table, column, updates)
        done += len(updates)
    if failed and not done:
        raise ValueError(WRONG_KEY)
    if failed:
        log.error("stored secrets that no key reads were left as they were", count=failed)
    if done:
        log.info("stored secrets re-encrypted with the derived key", count=done)
    return done


async def move_url_credentials(conn: asyncpg.Connection, box: SecretBox) -> int:
    """Consumers stored with credentials in ``url``: masked there, encrypted in ``url_enc``. Returns how many."""
    rows = await conn.fetch("SELECT id, url FROM consumers WHERE url_enc IS NULL")
    moved = [(r["id"], mask_url(r["url"]), box.encrypt(r["url"])) for r in rows
             if has_credentials(r["url"]) and mask_url(r["url"]) != r["url"]]
    for start in range(0, len(moved), _BATCH):
        part = moved[start:start + _BATCH]
        await conn.execute("UPDATE consumers c SET url = x.url, url_enc = x.enc"
                           " FROM unnest($1::uuid[], $2::text[], $3::bytea[]) AS x(id, url, enc) WHERE c.id = x.id",
                           [m[0] for m in part], [m[1] for m in part], [m[2] for m in part])
    if moved:
        log.info("consumer URL credentials moved to encrypted storage", consumers=len(moved))
    return len(moved)


async def _write(conn: asyncpg.Connection, table: str, column: str, updates: list[tuple[Any, bytes]]) -> None:
    for start in range(0, len(updates), _BATCH):
        part = updates[start:start + _BATCH]
        await conn.execute(f"UPDATE {table} t SET {column} = x.token"
                           " FROM unnest($1::uuid[], $2::bytea[]) AS x(id, token) WHERE t.id = x.id",
                           [u[0] for u in part], [u[1] for u in part])
