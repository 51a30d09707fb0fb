"""API keys and users. A key is shown once at creation and stored as its SHA-256.

Rules: an organization's ``admin`` manages that organization's keys and users, with roles up
to its own; only a global admin creates global keys and global users. Only ``admin`` keys list or
read keys and users (people's names and e-mail addresses are not for dashboards and scripts).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from registry.api.auth import KEY_PREFIX, IfMatch, Principal, Who
from registry.api.common import (
    Email,
    Page,
    Paging,
    Stamped,
    Table,
    Where,
    audit_create,
    changes_of,
    with_etag,
)
from registry.api.context import ApiContext
from registry.api.errors import ApiError, not_found
from registry.api.json_body import JsonBodyRoute
from registry.api.organizations import require_organization
from registry.audit import record
from registry.secrets import hash_token, new_token

Role = Literal["admin", "write", "read"]
KEYS = Table("api_key", "api_keys", "t.organization_id",
             "t.id, t.organization_id, t.user_id, t.name, t.role, t.prefix, t.created_at, t.updated_at, t.version,"
             " t.last_used_at, t.expires_at, t.revoked_at")
USERS = Table("user", "users", "t.organization_id",
              "t.id, t.organization_id, t.name, t.email, t.role, t.created_at, t.updated_at, t.version")


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    role: Role
    organization_id: UUID | None = Field(None, description="omit (global admin only) for a global key")
    user_id: UUID | None = Field(None, description="the person the key belongs to, for the audit log")
    expires_at: datetime | None = None


class ApiKey(Stamped):
    organization_id: UUID | None
    user_id: UUID | None
    name: str
    role: str
    prefix: str = Field(description="the key's first characters, to recognise it")
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKey):
    key: str = Field(description="shown once; send it as `Authorization: Bearer <key>`")


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    email: Email = Field(min_length=3)
    role: Role
    organization_id: UUID | None = Field(None, description="omit (global admin only) for a global administrator")


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200)
    email: Email | None = None
    role: Role | None = None


class User(Stamped):
    organization_id: UUID | None
    name: str
    email: str
    role: str


def key_shown(row: dict[str, Any]) -> dict[str, Any]:
    return ApiKey.model_validate(row).model_dump(mode="json")


def user_shown(row: dict[str, Any]) -> dict[str, Any]:
    return User.model_validate(row).model_dump(mode="json")


def check_grant(who: Principal, organization_id: UUID | None, role: str) -> None:
    """May ``who`` hand out ``role`` in ``organization_id`` (None: global)?"""
    if organization_id is None:
        if not who.is_global_admin:
            raise ApiError(403, "only a global admin key can create global keys or users")
        return
    who.require("admin")
    if not who.has(role):
        raise ApiError(403, f"a {who.role!r} key cannot grant the {role!r} role")


async def insert_key(conn: asyncpg.Connection, name: str, role: str, organization_id: str | None,
                     user_id: str | None = None, expires_at: datetime | None = None) -> tuple[str, str]:
    """Create a key; returns (id, key). Also used by `iotd admin create-key`."""
    key = new_token(KEY_PREFIX)
    key_id = await conn.fetchval(
        "INSERT INTO api_keys (name, role, organization_id, user_id, key_hash, prefix, expires_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        name, role, organization_id, user_id, hash_token(key), key[: len(KEY_PREFIX) + 5], expires_at)
    return str(key_id), key


def routes(ctx: ApiContext) -> APIRouter:
    r = APIRouter(route_class=JsonBodyRoute)

    @r.post("/api-keys", status_code=201, response_model=ApiKeyCreated, tags=["api-keys"])
    async def create_key(body: ApiKeyIn, who: Who, response: Response) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn, conn.transaction():
            if body.organization_id is not None:
                await require_organization(conn, who, body.organization_id)
            check_grant(who, body.organization_id, body.role)
            if body.user_id is not None:
                user = await USERS.get(conn, who, body.user_id)
                if user["organization_id"] != body.organization_id:
                    raise ApiError(422, "the user belongs to another organization than the key")
            key_id, key = await insert_key(conn, body.name, body.role,
                                           str(body.organization_id) if body.organization_id else None,
                                           str(body.user_id) if body.user_id else None, body.expires_at)
            row = await KEYS.get(conn, who, key_id)
            await audit_create(conn, who, "api_key", row, key_shown(row))
        with_etag(response, row["version"])
        return {**row, "key": key}

    @r.get("/api-keys", response_model=Page[ApiKey], tags=["api-keys"])
    async def list_keys(who: Who, paging: Annotated[Paging, Depends()],
                        organization_id: UUID | None = None) -> dict[str, Any]:
        who.require("admin")
        w = Where() if organization_id is None else Where().add("t.organization_id = {}", str(organization_id))
        async with ctx.pool.acquire() as conn:
            items, total = await KEYS.page(conn, who, w, paging)
        return paging.result(items, total)

    @r.get("/api-keys/{key_id}", response_model=ApiKey, tags=["api-keys"])
    async def get_key(key_id: UUID, who: Who) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn:
            row = await KEYS.get(conn, who, key_id)
        who.require("admin")
        return row

    @r.post("/api-keys/{key_id}/revoke", response_model=ApiKey, tags=["api-keys"],
            summary="Revoke a key; it stops working at once")
    async def revoke_key(key_id: UUID, who: Who) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn, conn.transaction():
            before = await KEYS.get(conn, who, key_id, lock=True)
            who.require("admin")
            row = await KEYS.update(conn, who, before, {"revoked_at": datetime.now().astimezone()}, None, key_shown)
        return row

    @r.post("/users", status_code=201, response_model=User, tags=["users"])
    async def create_user(body: UserIn, who: Who, response: Response) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn, conn.transaction():
            if body.organization_id is not None:
                await require_organization(conn, who, body.organization_id)
            check_grant(who, body.organization_id, body.role)
            user_id = await conn.fetchval(
                "INSERT INTO users (organization_id, name, email, role) VALUES ($1, $2, $3, $4) RETURNING id",
                str(body.organization_id) if body.organization_id else None, body.name, body.email.lower(), body.role)
            row = await USERS.get(conn, who, user_id)
            await audit_create(conn, who, "user", row, user_shown(row))
        with_etag(response, row["version"])
        return row

    @r.get("/users", response_model=Page[User], tags=["users"])
    async def list_users(who: Who, paging: Annotated[Paging, Depends()],
                         organization_id: UUID | None = None) -> dict[str, Any]:
        who.require("admin")
        w = Where() if organization_id is None else Where().add("t.organization_id = {}", str(organization_id))
        async with ctx.pool.acquire() as conn:
            items, total = await USERS.page(conn, who, w, paging, order="t.name, t.id")
        return paging.result(items, total)

    @r.get("/users/{user_id}", response_model=User, tags=["users"])
    async def get_user(user_id: UUID, who: Who, response: Response) -> dict[str, Any]:
        who.require("admin")
        return await USERS.read(ctx.pool, who, user_id, response)

    @r.patch("/users/{user_id}", response_model=User, tags=["users"])
    async def update_user(user_id: UUID, body: UserPatch, who: Who, response: Response,
                          if_match: IfMatch = None) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn, conn.transaction():
            current = await USERS.get(conn, who, user_id, lock=True)
            changes = changes_of(body)
            check_grant(who, current["organization_id"], changes.get("role", "read"))
            if "email" in changes:
                changes["email"] = changes["email"].lower()
            row = await USERS.update(conn, who, current, changes, if_match, user_shown)
        with_etag(response, row["version"])
        return row

    @r.delete("/users/{user_id}", status_code=204, tags=["users"])
    async def delete_user(user_id: UUID, who: Who, if_match: IfMatch = None) -> Response:
        async with ctx.pool.acquire() as conn, conn.transaction():
            current = await USERS.get(conn, who, user_id, lock=True)
            check_grant(who, current["organization_id"], "read")
            await USERS.delete(conn, who, current, if_match, user_shown)
        return Response(status_code=204)

    return r


async def create_first_key(conn: asyncpg.Connection, name: str, organization_id: str | None = None,
                           role: str = "admin") -> str:
    """A key made from the command line (no caller to check), audited as the CLI."""
    if organization_id is not None and not await conn.fetchval(
            "SELECT true FROM organizations WHERE id = $1", organization_id):
        raise not_found("organization")
    key_id, key = await insert_key(conn, name, role, organization_id)
    await record(conn, actor="cli", actor_key_id=None, action="create", resource="api_key", resource_id=key_id,
                 organization_id=organization_id, after={"name": name, "role": role, "global": organization_id is None})
    return key
