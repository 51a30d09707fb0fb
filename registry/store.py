"""Writes to the registry used by the CLI, the demo and tests (the REST API builds on these).

Validation of identifiers happens here so every entry point gives the same clear errors.
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import orjson

from registry.consumer_url import mask_url
from registry.secrets import SecretBox, hash_token, new_token

_HEX16 = re.compile(r"^[0-9a-fA-F]{16}$")
_HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")


class RegistryError(ValueError):
    """A registry write was refused; the message says why, for an API 4xx or a CLI error."""


def normalize_eui(value: str, what: str = "dev_eui") -> str:
    cleaned = value.replace(":", "").replace("-", "").strip()
    if not _HEX16.match(cleaned):
        raise RegistryError(f"{what} must be 16 hex characters, got {value!r}")
    return cleaned.lower()


async def create_organization(conn: asyncpg.Connection, name: str) -> str:
    return str(await conn.fetchval("INSERT INTO organizations (name) VALUES ($1) RETURNING id", name))


async def create_application(conn: asyncpg.Connection, organization_id: str, name: str, description: str = "") -> str:
    return str(await conn.fetchval(
        "INSERT INTO applications (organization_id, name, description) VALUES ($1, $2, $3) RETURNING id",
        organization_id, name, description))


async def create_device(
    conn: asyncpg.Connection, box: SecretBox, *, application_id: str, name: str, kind: str = "lorawan",
    decoder: str | None = None, dev_eui: str | None = None, join_eui: str | None = None,
    app_key: str | None = None, imei: str | None = None, tags: dict[str, str] | None = None,
    lat: float | None = None, lon: float | None = None,
) -> tuple[str, str | None]:
    """Create a device; returns (id, ingest key). The ingest key (nbiot/http) is shown only here."""
    if kind == "lorawan" and not dev_eui:
        raise RegistryError("a lorawan device needs a dev_eui")
    if app_key is not None and not _HEX32.match(app_key):
        raise RegistryError("app_key must be 32 hex characters")
    ingest_key = new_token("iotd_ik") if kind in ("nbiot", "http") else None
    device_id = await conn.fetchval(
        "INSERT INTO devices (application_id, name, kind, decoder, dev_eui, join_eui, app_key_enc, imei,"
        " ingest_key_hash, tags, lat, lon) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) RETURNING id",
        application_id, name, kind, decoder, normalize_eui(dev_eui) if dev_eui else None,
        normalize_eui(join_eui, "join_eui") if join_eui else None,
        box.encrypt(app_key.lower()) if app_key else None, imei,
        hash_token(ingest_key) if ingest_key else None, tags or {}, lat, lon,
    )
    return str(device_id), ingest_key


async def create_consumer(
    conn: asyncpg.Connection, box: SecretBox, *, organization_id: str, name: str, kind: str, url: str,
    format: str = "native", secret: str | None = None, headers: dict[str, str] | None = None, qos: int = 1,
    batch_size: int = 1, batch_wait_ms: int = 0, timeout_s: float = 10.0, options: dict[str, Any] | None = None,
) -> str:
    """Create a consumer; credentials in ``url`` are stored encrypted (``url_enc``), ``url`` keeps the masked form."""
    return str(await conn.fetchval(
        "INSERT INTO consumers (organization_id, name, kind, url, url_enc, format, secret_enc, headers_enc, qos,"
        " batch_size, batch_wait_ms, timeout_s, options)"
        " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) RETURNING id",
        organization_id, name, kind, *stored_url(box, url), format, box.encrypt(secret) if secret else None,
        box.encrypt(orjson.dumps(headers).decode()) if headers else None, qos, batch_size, batch_wait_ms,
        timeout_s, options or {},
    ))


def stored_url(box: SecretBox, url: str) -> tuple[str, bytes | None]:
    """(``consumers.url``, ``consumers.url_enc``) for ``url``: the masked form, and the whole URL encrypted if
    masking changed it (``registry.consumer_url``)."""
    masked = mask_url(url)
    return masked, box.encrypt(url) if masked != url else None


async def create_subscription(
    conn: asyncpg.Connection, *, consumer_id: str, application_id: str | None = None,
    device_ids: list[str] | None = None, decoder: str | None = None, tags: dict[str, str] | None = None,
) -> str:
    if not (application_id or device_ids or decoder or tags):
        raise RegistryError("a subscription needs application_id, device_ids, decoder or tags")
    return str(await conn.fetchval(
        "INSERT INTO subscriptions (consumer_id, application_id, device_ids, decoder, tags)"
        " VALUES ($1,$2,$3,$4,$5) RETURNING id",
        consumer_id, application_id, device_ids or [], decoder, tags or {},
    ))
