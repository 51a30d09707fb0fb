"""Organizations (tenants) and their applications.

Deleting either deletes its devices, so the answer waits until this instance's registry cache no
longer accepts their ingest keys (``registry.api.freshness``). Their mapping to ChirpStack tenants
is in ``registry.api.integrations``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from registry.api.auth import IfMatch, Principal, Who
from registry.api.common import (
    EXAMPLE_ORG,
    Email,
    Page,
    Paging,
    Stamped,
    Table,
    Where,
    audit_create,
    changes_of,
    search_pattern,
    with_etag,
)
from registry.api.context import ApiContext
from registry.api.erasure import ERASE_HELP, erase_history_of, erase_late_arrivals, erasing
from registry.api.errors import ApiError, not_found
from registry.api.freshness import applied
from registry.api.json_body import JsonBodyRoute
from registry.records import DEFAULT_RETENTION_DAYS

Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")]

ORGANIZATIONS = Table("organization", "organizations", "t.id",
                      "t.id, t.name, t.description, t.created_at, t.updated_at, t.version")
APPLICATIONS = Table("application", "applications", "t.organization_id",
                     "t.id, t.organization_id, t.name, t.description, t.status, t.owner, t.contact_name,"
                     " t.contact_email, t.contact_phone, t.personal_data, t.data_classification, t.retention_days,"
                     " t.created_at, t.updated_at, t.version")


class OrganizationIn(BaseModel):
    """A tenant: a municipality or one of its departments; everything else belongs to one."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "Aarhus", "description": "City of Aarhus"}]})
    name: Name
    description: str = Field("", max_length=2000)


class OrganizationPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name | None = None
    description: str | None = Field(None, max_length=2000)


class Organization(Stamped):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"id": EXAMPLE_ORG, "name": "Aarhus", "description": "City of Aarhus",
         "created_at": "2026-03-01T09:00:00Z", "updated_at": "2026-03-01T09:00:00Z", "version": 1}]})
    name: str
    description: str


PERSONAL_DATA_RETENTION_DAYS = 7   # the default retention of an application created with personal_data
RETENTION_HELP = ("days its messages are kept in the message history (0: none are kept; default"
                  f" {DEFAULT_RETENTION_DAYS}, or {PERSONAL_DATA_RETENTION_DAYS} for personal data); a change"
                  " applies to messages stored from then on")
Status = Literal["planned", "in_development", "prototype", "in_operation", "retired"]
Classification = Literal["open", "shared", "closed"]


class ApplicationFields(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str = Field("", max_length=2000)
    status: Status = "in_operation"
    owner: str = Field("", max_length=200, description="the department or person responsible")
    contact_name: str = Field("", max_length=200)
    contact_email: Email = ""
    contact_phone: str = Field("", max_length=50)
    personal_data: bool = Field(False, description="the data may identify persons (GDPR)")
    data_classification: Classification = Field("closed", description="open, shared or closed data")
    retention_days: int = Field(DEFAULT_RETENTION_DAYS, ge=0, le=3650, description=RETENTION_HELP)


class ApplicationIn(ApplicationFields):
    """A group of devices with one purpose, owner and data classification; consumers subscribe to it."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"organization_id": EXAMPLE_ORG, "name": "Schools", "owner": "Children and Youth",
         "data_classification": "shared", "contact_email": "iot@aarhus.example"}]})
    organization_id: UUID
    name: Name


class ApplicationPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name | None = None
    description: str | None = Field(None, max_length=2000)
    status: Status | None = None
    owner: str | None = Field(None, max_length=200)
    contact_name: str | None = Field(None, max_length=200)
    contact_email: Email | None = None
    contact_phone: str | None = Field(None, max_length=50)
    personal_data: bool | None = None
    data_classification: Classification | None = None
    retention_days: int | None = Field(None, ge=0, le=3650, description=RETENTION_HELP)


class Application(Stamped):
    organization_id: UUID
    name: str
    description: str
    status: str
    owner: str
    contact_name: str
    contact_email: str
    contact_phone: str
    personal_data: bool
    data_classification: str
    retention_days: int


def organization_shown(row: dict[str, Any]) -> dict[str, Any]:
    return Organization.model_validate(row).model_dump(mode="json")


def application_shown(row: dict[str, Any]) -> dict[str, Any]:
    return Application.model_validate(row).model_dump(mode="json")


async def require_organization(conn: Any, who: Principal, organization_id: UUID) -> None:
    """404 unless the organization exists and the key may see it."""
    if not who.sees(organization_id) or not await conn.fetchval(
            "SELECT true FROM organizations WHERE id = $1", str(organization_id)):
        raise not_found("organization")


def routes(ctx: ApiContext) -> APIRouter:
    r = APIRouter(route_class=JsonBodyRoute)

    @r.post("/organizations", status_code=201, response_model=Organization, tags=["organizations"],
            summary="Create an organization (global admin)")
    async def create_organization(body: OrganizationIn, who: Who, response: Response) -> dict[str, Any]:
        if not who.is_global_admin:
            raise ApiError(403, "only a global admin key can create organizations")
        async with ctx.pool.acquire() as conn, conn.transaction():
            row = dict(await conn.fetchrow(
                f"INSERT INTO organizations (name, description) VALUES ($1, $2) RETURNING "
                f"{ORGANIZATIONS.columns.replace('t.', '')}, id AS _org", body.name, body.description))
            await audit_create(conn, who, "organization", row, organization_shown(row))
        with_etag(response, row["version"])
        return row

    @r.get("/organizations", response_model=Page[Organization], tags=["organizations"])
    async def list_organizations(who: Who, paging: Annotated[Paging, Depends()],
                                 q: str | None = Query(None, max_length=200, description="search in names")
                                 ) -> dict[str, Any]:
        w = Where()
        if q:
            w = w.add("t.name ILIKE {}", search_pattern(q))
        async with ctx.pool.acquire() as conn:
            items, total = await ORGANIZATIONS.page(conn, who, w, paging, order="t.name, t.id")
        return paging.result(items, total)

    @r.get("/organizations/{organization_id}", response_model=Organization, tags=["organizations"])
    async def get_organization(organization_id: UUID, who: Who, response: Response) -> dict[str, Any]:
        return await ORGANIZATIONS.read(ctx.pool, who, organization_id, response)

    @r.patch("/organizations/{organization_id}", response_model=Organization, tags=["organizations"])
    async def update_organization(organization_id: UUID, body: OrganizationPatch, who: Who, response: Response,
                                  if_match: IfMatch = None) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn, conn.transaction():
            before = await ORGANIZATIONS.get(conn, who, organization_id, lock=True)
            who.require("admin")
            row = await ORGANIZATIONS.update(conn, who, before, changes_of(body),
                                             if_match, organization_shown)
        with_etag(response, row["version"])
        return row

    @r.delete("/organizations/{organization_id}", status_code=204, tags=["organizations"],
              summary="Delete an organization and everything in it (global admin)")
    async def delete_organization(organization_id: UUID, who: Who, request: Request,
                                  if_match: IfMatch = None) -> Response:
        async with ctx.pool.acquire() as conn, conn.transaction():
            before = await ORGANIZATIONS.get(conn, who, organization_id, lock=True)
            if not who.is_global_admin:
                raise ApiError(403, "only a global admin key can delete organizations")
            await ORGANIZATIONS.delete(conn, who, before, if_match, organization_shown)
        await applied(request)
        return Response(status_code=204)

    @r.post("/applications", status_code=201, response_model=Application, tags=["applications"])
    async def create_application(body: ApplicationIn, who: Who, response: Response) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn, conn.transaction():
            await require_organization(conn, who, body.organization_id)
            who.require("write")
            fields = body.model_dump()
            fields["organization_id"] = str(body.organization_id)
            if body.personal_data and "retention_days" not in body.model_fields_set:
                fields["retention_days"] = PERSONAL_DATA_RETENTION_DAYS
            cols = ", ".join(fields)
            marks = ", ".join(f"${i + 1}" for i in range(len(fields)))
            row = dict(await conn.fetchrow(
                f"INSERT INTO applications ({cols}) VALUES ({marks}) RETURNING "
                f"{APPLICATIONS.columns.replace('t.', '')}, organization_id AS _org", *fields.values()))
            await audit_create(conn, who, "application", row, application_shown(row))
        with_etag(response, row["version"])
        return row

    @r.get("/applications", response_model=Page[Application], tags=["applications"])
    async def list_applications(who: Who, paging: Annotated[Paging, Depends()],
                                organization_id: UUID | None = None,
                                status: Status | None = None,
                                q: str | None = Query(None, max_length=200, description="search in name and owner"),
                                ) -> dict[str, Any]:
        w = Where()
        if organization_id is not None:
            w = w.add("t.organization_id = {}", str(organization_id))
        if status is not None:
            w = w.add("t.status = {}", status)
        if q:
            w = w.add("(t.name ILIKE {} OR t.owner ILIKE {})", search_pattern(q), search_pattern(q))
        async with ctx.pool.acquire() as conn:
            items, total = await APPLICATIONS.page(conn, who, w, paging, order="t.name, t.id")
        return paging.result(items, total)

    @r.get("/applications/{application_id}", response_model=Application, tags=["applications"])
    async def get_application(application_id: UUID, who: Who, response: Response) -> dict[str, Any]:
        return await APPLICATIONS.read(ctx.pool, who, application_id, response)

    @r.patch("/applications/{application_id}", response_model=Application, tags=["applications"])
    async def update_application(application_id: UUID, body: ApplicationPatch, who: Who, response: Response,
                                 if_match: IfMatch = None) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn, conn.transaction():
            before = await APPLICATIONS.get(conn, who, application_id, lock=True)
            who.require("write")
            row = await APPLICATIONS.update(conn, who, before, changes_of(body),
                                            if_match, application_shown)
        with_etag(response, row["version"])
        return row

    @r.delete("/applications/{application_id}", status_code=204, tags=["applications"],
              summary="Delete an application and its devices")
    async def delete_application(application_id: UUID, who: Who, request: Request, if_match: IfMatch = None,
                                 erase_history: Annotated[bool | None, Query(description=ERASE_HELP)] = None
                                 ) -> Response:
        async with ctx.pool.acquire() as conn, conn.transaction():
            before = await APPLICATIONS.get(conn, who, application_id, lock=True)
            who.require("write")
            devices = [str(d) for d in await conn.fetchval(
                "SELECT coalesce(array_agg(id), '{}') FROM devices WHERE application_id = $1", str(application_id))]
            erase = await erasing(conn, erase_history, str(application_id))
            await APPLICATIONS.delete(conn, who, before, if_match, application_shown)
            if erase:
                await erase_history_of(conn, who, "application", str(application_id),
                                       str(before["organization_id"]), devices)
        await applied(request)
        if erase:
            await erase_late_arrivals(ctx.pool, devices)
        return Response(status_code=204)

    return r

