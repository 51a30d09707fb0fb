"""Shared pieces of every resource: scoped queries, pagination, ETags and audited writes.

A ``Table`` knows how to find its rows' organization (``org_expr``), so every read and write
is filtered to the caller's organization in SQL: another tenant's row is simply not found.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar
from uuid import UUID

import asyncpg
from fastapi import Query, Response
from pydantic import BaseModel, Field

from registry import audit
from registry.api.auth import Principal
from registry.api.errors import ApiError, not_found

T = TypeVar("T")
# ids in the OpenAPI examples of the main resources
EXAMPLE_ORG = "3fa1c2d4-5b6e-4f70-8a91-b2c3d4e5f601"
EXAMPLE_APP = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
EXAMPLE_CONSUMER = "5e2b7c1a-9d3f-4a6e-8b0c-2d4f6a8b0c1e"


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int = Field(description="objects matching the filters")
    limit: int
    offset: int


class Paging:
    def __init__(self, limit: int = Query(100, ge=1, le=1000, description="page size"),
                 offset: int = Query(0, ge=0, le=10_000_000, description="objects to skip")) -> None:
        self.limit = limit
        self.offset = offset

    def result(self, items: list[Any], total: int) -> dict[str, Any]:
        """The ``Page`` answer for one page of ``items`` out of ``total``."""
        return {"items": items, "total": total, "limit": self.limit, "offset": self.offset}


def etag(version: int) -> str:
    return f'"{version}"'


def check_if_match(if_match: str | None, version: int) -> None:
    """Optimistic concurrency: a stale ``If-Match`` is 412; no header means last write wins."""
    if if_match is None or if_match.strip() == "*":
        return
    wanted = {tag.strip().removeprefix("W/") for tag in if_match.split(",")}
    if etag(version) not in wanted:
        raise ApiError(412, f"the object changed (now version {version}); fetch it again and retry with its ETag")


@dataclass(frozen=True, slots=True)
class Where:
    """SQL conditions with positional parameters, built up clause by clause."""

    clauses: tuple[str, ...] = ()
    params: tuple[Any, ...] = ()

    def add(self, clause: str, *values: Any) -> Where:
        """``clause`` uses ``{}`` once per value for its placeholder."""
        n = len(self.params)
        marks = [f"${n + i + 1}" for i in range(len(values))]
        return Where((*self.clauses, clause.format(*marks)), (*self.params, *values))

    def sql(self) -> str:
        return " AND ".join(self.clauses) or "true"


@dataclass(frozen=True, slots=True)
class Table:
    resource: str          # the name used in messages and the audit log, e.g. "device"
    table: str
    org_expr: str          # SQL giving the organization id of row ``t``
    columns: str           # the SELECT list (never a secret column)

    def scoped(self, who: Principal, where: Where | None = None) -> Where:
        w = where or Where()
        if who.organization_id is not None:
            w = w.add(f"({self.org_expr}) = {{}}::uuid", who.organization_id)
        return w

    async def get(self, conn: asyncpg.Connection, who: Principal, object_id: UUID | str,
                  lock: bool = False) -> dict[str, Any]:
        w = self.scoped(who, Where().add("t.id = {}", str(object_id)))
        row = await conn.fetchrow(f"SELECT {self.columns}, ({self.org_expr}) AS _org FROM {self.table} t"
                                  f" WHERE {w.sql()}{' FOR UPDATE OF t' if lock else ''}", *w.params)
        if row is None:
            raise not_found(self.resource)
        return dict(row)

    async def page(self, conn: asyncpg.Connection, who: Principal, where: Where, paging: Paging,
                   order: str = "t.created_at, t.id") -> tuple[list[dict[str, Any]], int]:
        w = self.scoped(who, where)
        total = await conn.fetchval(f"SELECT count(*) FROM {self.table} t WHERE {w.sql()}", *w.params)
        rows = await conn.fetch(f"SELECT {self.columns} FROM {self.table} t WHERE {w.sql()} ORDER BY {order}"
                                f" LIMIT {paging.limit} OFFSET {paging.offset}", *w.params)
        return [dict(r) for r in rows], int(total)

    async def read(self, pool: asyncpg.Pool, who: Principal, object_id: UUID | str,
                   response: Response) -> dict[str, Any]:
        """One object for a GET, with its version as the ETag."""
        async with pool.acquire() as conn:
            row = await self.get(conn, who, object_id)
        with_etag(response, row["version"])
        return row

    async def update(self, conn: asyncpg.Connection, who: Principal, before: dict[str, Any],
                     changes: dict[str, Any], if_match: str | None, shown: Any) -> dict[str, Any]:
        """Apply ``changes`` (column -> value) to ``before``, the row the caller read with ``lock=True``,
        under the version check; audited. Returns the new row."""
        check_if_match(if_match, before["version"])
        object_id = str(before["id"])
        if changes:
            sets = ", ".join(f"{col} = ${i + 2}" for i, col in enumerate(changes))
            await conn.execute(f"UPDATE {self.table} SET {sets}, version = version + 1, updated_at = now()"
                               f" WHERE id = $1", object_id, *changes.values())
        after = await self.get(conn, who, object_id)
        await audited(conn, who, "update", self.resource, object_id, _org(before), shown(before), shown(after))
        return after

    async def delete(self, conn: asyncpg.Connection, who: Principal, before: dict[str, Any], if_match: str | None,
                     shown: Any) -> None:
        """Delete ``before``, the row the caller read with ``lock=True``, under the version check; audited."""
        check_if_match(if_match, before["version"])
        await conn.execute(f"DELETE FROM {self.table} WHERE id = $1", str(before["id"]))
        await audited(conn, who, "delete", self.resource, str(before["id"]), _org(before), shown(before))


def _org(row: dict[str, Any]) -> str | None:
    org = row.get("_org")
    return str(org) if org is not None else None


async def audited(conn: asyncpg.Connection, who: Principal, action: str, resource: str, resource_id: str | None,
                  organization_id: str | None, before: dict[str, Any] | None = None,
                  after: dict[str, Any] | None = None) -> None:
    """An audit-log row naming the calling key, in the caller's transaction."""
    await audit.record(conn, actor=who.actor, actor_key_id=who.key_id, action=action, resource=resource,
                       resource_id=resource_id, organization_id=organization_id, before=before, after=after)


async def audit_create(conn: asyncpg.Connection, who: Principal, resource: str, row: dict[str, Any],
                       shown: dict[str, Any]) -> None:
    await audited(conn, who, "create", resource, str(row["id"]), _org(row), after=shown)


def with_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = etag(version)


def search_pattern(q: str) -> str:
    """An ILIKE pattern matching ``q`` literally anywhere."""
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


Email = Annotated[str, Field(max_length=254, pattern=r"^$|^[^@\s]+@[^@\s]+\.[^@\s]+$",
                             description="an e-mail address (or empty)")]


def changes_of(body: BaseModel, nullable: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The fields a PATCH body sets; ``null`` is refused for fields that cannot be empty."""
    found = body.model_dump(exclude_unset=True)
    for key, value in found.items():
        if value is None and key not in nullable:
            raise ApiError(422, f"{key} cannot be null; leave it out to keep the current value")
    return found


class Stamped(BaseModel):
    """Fields every stored object shows."""

    id: UUID
    created_at: datetime
    updated_at: datetime
    version: int = Field(description="increments on every change; the ETag")
