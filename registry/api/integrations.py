"""ChirpStack's HTTP integration: the tokens it authenticates with, and organizations mapped to its tenants.

**Tokens** (global admin only). ``POST /integration-tokens`` creates one: shown once, stored as its
SHA-256 like API keys, optionally bound to one ChirpStack tenant id (then ``POST /ingest/chirpstack``
refuses, 403, an event whose ``deviceInfo.tenantId`` is another tenant's). ``GET /integration-tokens``
lists them; ``POST /integration-tokens/{id}/revoke`` revokes one. ChirpStack sends the token as
``Authorization: Bearer <token>``; the distributor checks it against its in-memory registry cache, so
create and revoke answer only once this instance's cache has the change (``registry.api.freshness``).
``iotd admin create-integration-token`` makes one from the command line. Besides these, the setting
``IOTD_CHIRPSTACK_HTTP_TOKEN`` is one global token.

**Mappings** (``/organizations/{id}/chirpstack-mappings``): a global admin maps an organization to a
ChirpStack tenant id, optionally narrowed to one ChirpStack application id; the organization's own
keys may read them. What a mapping means for routing, unknown devices and registering them is in
``registry.tenancy``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from registry.api.auth import IfMatch, Principal, Who
from registry.api.common import Page, Paging, Stamped, Table, Where, audit_create, with_etag
from registry.api.context import ApiContext
from registry.api.errors import ApiError, not_found
from registry.api.freshness import applied
from registry.api.json_body import JsonBodyRoute
from registry.api.organizations import require_organization
from registry.audit import record
from registry.secrets import hash_token, new_token

TOKEN_PREFIX = "iotd_it"
TOKENS = Table("integration_token", "integration_tokens", "NULL::uuid",
               "t.id, t.name, t.prefix, t.chirpstack_tenant_id, t.created_at, t.updated_at, t.version, t.revoked_at")
MAPPINGS = Table("chirpstack_mapping", "chirpstack_mappings", "t.organization_id",
                 "t.id, t.organization_id, t.tenant_id, t.application_id, t.created_at, t.updated_at, t.version")


class IntegrationTokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, description="a label, e.g. the ChirpStack installation")
    chirpstack_tenant_id: UUID | None = Field(None, description="accept only events of this ChirpStack tenant")


class IntegrationToken(Stamped):
    name: str
    prefix: str = Field(description="the token's first characters, to recognise it")
    chirpstack_tenant_id: UUID | None
    revoked_at: datetime | None


class IntegrationTokenCreated(IntegrationToken):
    token: str = Field(description="shown once; ChirpStack sends it as `Authorization: Bearer <token>`")


class MappingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant_id: UUID = Field(description="ChirpStack's tenant id")
    application_id: UUID | None = Field(None, description="only this ChirpStack application of the tenant")


class Mapping(Stamped):
    organization_id: UUID
    tenant_id: UUID
    application_id: UUID | None


def token_shown(row: dict[str, Any]) -> dict[str, Any]:
    return IntegrationToken.model_validate(row).model_dump(mode="json")


def mapping_shown(row: dict[str, Any]) -> dict[str, Any]:
    return Mapping.model_validate(row).model_dump(mode="json")


def require_global_admin(who: Principal, what: str) -> None:
    if not who.is_global_admin:
        raise ApiError(403, f"{what} are managed by a global admin key")


async def insert_token(conn: asyncpg.Connection, name: str, tenant_id: str | None) -> tuple[str, str]:
    """Create a token; returns (id, token). The token itself is not stored, only its SHA-256."""
    token = new_token(TOKEN_PREFIX)
    token_id = await conn.fetchval(
        "INSERT INTO integration_tokens (name, token_hash, prefix, chirpstack_tenant_id) VALUES ($1, $2, $3, $4)"
        " RETURNING id", name, hash_token(token), token[: len(TOKEN_PREFIX) + 5], tenant_id)
    return str(token_id), token


async def create_token_from_cli(conn: asyncpg.Connection, name: str, tenant_id: str | None) -> str:
    """`iotd admin create-integration-token`: no caller to check; audited as the CLI."""
    try:
        tenant = str(UUID(tenant_id)) if tenant_id else None
    except ValueError:
        raise ValueError(f"a ChirpStack tenant id is a UUID, got {tenant_id!r}") from None
    token_id, token = await insert_token(conn, name, tenant)
    await record(conn, actor="cli", actor_key_id=None, action="create", resource="integration_token",
                 resource_id=token_id, organization_id=None, after={"name": name, "chirpstack_tenant_id": tenant})
    return token


def routes(ctx: ApiContext) -> APIRouter:
    r = APIRouter(route_class=JsonBodyRoute)

    @r.post("/integration-tokens", status_code=201, response_model=IntegrationTokenCreated, tags=["integrations"],
            summary="A token for ChirpStack's HTTP integration (global admin; shown once)")
    async def create_token(body: IntegrationTokenIn, who: Who, request: Request, response: Response
                           ) -> dict[str, Any]:
        require_global_admin(who, "integration tokens")
        tenant = str(body.chirpstack_tenant_id) if body.chirpstack_tenant_id else None
        async with ctx.pool.acquire() as conn, conn.transaction():
            token_id, token = await insert_token(conn, body.name, tenant)
            row = await TOKENS.get(conn, who, token_id)
            await audit_create(conn, who, "integration_token", row, token_shown(row))
        await applied(request)
        with_etag(response, row["version"])
        return {**row, "token": token}

    @r.get("/integration-tokens", response_model=Page[IntegrationToken], tags=["integrations"])
    async def list_tokens(who: Who, paging: Annotated[Paging, Depends()]) -> dict[str, Any]:
        require_global_admin(who, "integration tokens")
        async with ctx.pool.acquire() as conn:
            items, total = await TOKENS.page(conn, who, Where(), paging)
        return paging.result(items, total)

    @r.post("/integration-tokens/{token_id}/revoke", response_model=IntegrationToken, tags=["integrations"],
            summary="Revoke a token; it stops working at once")
    async def revoke_token(token_id: UUID, who: Who, request: Request) -> dict[str, Any]:
        require_global_admin(who, "integration tokens")
        async with ctx.pool.acquire() as conn, conn.transaction():
            before = await TOKENS.get(conn, who, token_id, lock=True)
            row = before if before["revoked_at"] is not None else await TOKENS.update(
                conn, who, before, {"revoked_at": datetime.now().astimezone()}, None, token_shown)
        await applied(request)
        return row

    base = "/organizations/{organization_id}/chirpstack-mappings"

    @r.get(base, response_model=Page[Mapping], tags=["organizations"],
           summary="The ChirpStack tenants (and applications) whose events this organization receives")
    async def list_mappings(organization_id: UUID, who: Who, paging: Annotated[Paging, Depends()]) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn:
            await require_organization(conn, who, organization_id)
            items, total = await MAPPINGS.page(conn, who, Where().add("t.organization_id = {}", str(organization_id)),
                                               paging, order="t.tenant_id, t.application_id NULLS FIRST, t.id")
        return paging.result(items, total)

    @r.post(base, status_code=201, response_model=Mapping, tags=["organizations"],
            summary="Map the organization to a ChirpStack tenant or application (global admin)",
            responses={409: {"description": "the tenant (or application) is already mapped"}})
    async def create_mapping(organization_id: UUID, body: MappingIn, who: Who, request: Request,
                             response: Response) -> dict[str, Any]:
        application = str(body.application_id) if body.application_id else None
        async with ctx.pool.acquire() as conn, conn.transaction():
            await require_organization(conn, who, organization_id)
            require_global_admin(who, "ChirpStack mappings")
            if await conn.fetchval("SELECT true FROM chirpstack_mappings WHERE tenant_id = $1"
                                   " AND application_id IS NOT DISTINCT FROM $2", str(body.tenant_id), application):
                raise ApiError(409, "this ChirpStack tenant (or tenant and application) is already mapped to an"
                                    " organization; delete that mapping first")
            row = dict(await conn.fetchrow(
                "INSERT INTO chirpstack_mappings (organization_id, tenant_id, application_id) VALUES ($1, $2, $3)"
                f" RETURNING {MAPPINGS.columns.replace('t.', '')}, organization_id AS _org",
                str(organization_id), str(body.tenant_id), application))
            await audit_create(conn, who, "chirpstack_mapping", row, mapping_shown(row))
        await applied(request)
        with_etag(response, row["version"])
        return row

    @r.delete(base + "/{mapping_id}", status_code=204, tags=["organizations"],
              summary="Remove a mapping (global admin)")
    async def delete_mapping(organization_id: UUID, mapping_id: UUID, who: Who, request: Request,
                             if_match: IfMatch = None) -> Response:
        async with ctx.pool.acquire() as conn, conn.transaction():
            before = await MAPPINGS.get(conn, who, mapping_id, lock=True)
            if before["organization_id"] != organization_id:
                raise not_found("chirpstack mapping")
            require_global_admin(who, "ChirpStack mappings")
            await MAPPINGS.delete(conn, who, before, if_match, mapping_shown)
        await applied(request)
        return Response(status_code=204)

    return r
