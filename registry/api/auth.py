"""API keys: who is calling, in which organization, with which role.

A key is a long random token shown once; the database keeps its SHA-256. A key belongs to one
organization with a role (``read`` < ``write`` < ``admin``), or is global (no organization),
which sees every organization; a global ``admin`` key may create organizations and global keys.

The HTTP guard (``distributor.http_guard``) authenticates the key from the headers before any body
is read and leaves the ``Principal`` in the request's scope state (``PRINCIPAL``); the ``Who``
dependency takes it from there (and authenticates itself only when no guard ran).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends, Header, Request

from registry.api.errors import ApiError
from registry.secrets import hash_token

ROLES = ("read", "write", "admin")
_RANK = {role: i for i, role in enumerate(ROLES)}
KEY_PREFIX = "iotd_ak"
PRINCIPAL = "iotd_principal"       # scope["state"] key under which the HTTP guard leaves the caller
MISSING_KEY = "missing API key: send `Authorization: Bearer <key>`"
INVALID_KEY = "invalid API key (unknown, revoked or expired)"


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    name: str
    organization_id: str | None     # None: a global key
    role: str

    @property
    def is_global(self) -> bool:
        return self.organization_id is None

    @property
    def is_global_admin(self) -> bool:
        return self.is_global and self.role == "admin"

    @property
    def actor(self) -> str:
        return f"key:{self.name} ({self.key_id})"

    def has(self, role: str) -> bool:
        return _RANK[self.role] >= _RANK[role]

    def require(self, role: str) -> None:
        if not self.has(role):
            raise ApiError(403, f"this API key has the {self.role!r} role; the operation needs {role!r}")

    def sees(self, organization_id: object) -> bool:
        return self.is_global or str(organization_id) == self.organization_id


def bearer_value(header: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value; None when there is none."""
    scheme, _, token = header.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def bearer_token(request: Request) -> str:
    token = bearer_value(request.headers.get("authorization", ""))
    if token is None:
        raise ApiError(401, MISSING_KEY, headers={"WWW-Authenticate": "Bearer"})
    return token


async def authenticate(pool: asyncpg.Pool, token: str) -> Principal:
    """The principal for a key; 401 for an unknown, revoked or expired key (the same answer for all)."""
    row = await pool.fetchrow(
        "UPDATE api_keys SET last_used_at = now() WHERE key_hash = $1 AND revoked_at IS NULL"
        " AND (expires_at IS NULL OR expires_at > now()) RETURNING id, name, organization_id, role",
        hash_token(token))
    if row is None:
        raise ApiError(401, INVALID_KEY, headers={"WWW-Authenticate": "Bearer"})
    org = row["organization_id"]
    return Principal(str(row["id"]), row["name"], str(org) if org is not None else None, row["role"])


async def current_principal(request: Request) -> Principal:
    """The FastAPI dependency: the caller the HTTP guard authenticated before the body was read."""
    found = request.scope.get("state", {}).get(PRINCIPAL)
    if isinstance(found, Principal):
        return found
    return await authenticate(request.app.state.api_context.pool, bearer_token(request))


Who = Annotated[Principal, Depends(current_principal)]
IfMatch = Annotated[str | None, Header(description="the ETag you read, to refuse lost updates")]
