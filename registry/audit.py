"""The audit log: who changed what, when, with the object before and after (secrets masked).

Written in the same transaction as the change it describes, so the log and the registry never
disagree. Objects are logged as the API shows them, which never contains a secret; the mask
below is a second line of defence for any key that looks like one.
"""

from __future__ import annotations

from typing import Any

import asyncpg

_SECRET_WORDS = ("secret", "password", "app_key", "token", "ingest_key", "headers", "key_hash")
MASK = "***"


def mask(value: Any) -> Any:
    """A copy of ``value`` with every secret-looking key's value replaced by ``***``."""
    if isinstance(value, dict):
        return {k: MASK if _is_secret(k) and value[k] is not None else mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value


def _is_secret(key: str) -> bool:
    k = key.lower()
    return not k.startswith("has_") and any(word in k for word in _SECRET_WORDS)


async def record(conn: asyncpg.Connection, *, actor: str, actor_key_id: str | None, action: str, resource: str,
                 resource_id: str | None, organization_id: str | None, before: dict[str, Any] | None = None,
                 after: dict[str, Any] | None = None) -> None:
    await conn.execute(
        "INSERT INTO audit_log (organization_id, actor_key_id, actor, action, resource, resource_id, before, after)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        organization_id, actor_key_id, actor, action, resource, resource_id,
        mask(before) if before is not None else None, mask(after) if after is not None else None)
