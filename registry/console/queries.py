"""What the console pages show, read with the API's own tables and scoping (``registry.api.common.Table``).

Every query goes through ``Table.scoped``/``Table.page`` with the signed-in ``Principal``, exactly as the
API's lists do, so a user of one organization sees what that organization's API key would see and
nothing else: there is no second copy of the tenancy rules to drift.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

import asyncpg

from registry.api.auth import Principal
from registry.api.common import Paging, Table, Where, search_pattern
from registry.api.consumers import CONSUMERS
from registry.api.devices import DEVICES
from registry.api.organizations import APPLICATIONS, ORGANIZATIONS

PAGE_SIZE = 50
MAX_OFFSET = 10_000_000
MAX_QUERY = 200
SORTS = {"name": "t.name, t.id", "created": "t.created_at DESC, t.id"}   # the only orders a request may pick
MAX_APPLICATIONS_LISTED = 500
COUNTED: tuple[tuple[str, Table], ...] = (
    ("organizations", ORGANIZATIONS), ("applications", APPLICATIONS), ("devices", DEVICES),
    ("consumers", CONSUMERS))


async def counts(pool: asyncpg.Pool, who: Principal) -> dict[str, int]:
    """How many organizations, applications, devices and consumers ``who`` may see."""
    found: dict[str, int] = {}
    async with pool.acquire() as conn:
        for name, table in COUNTED:
            w = table.scoped(who)
            found[name] = int(await conn.fetchval(f"SELECT count(*) FROM {table.table} t WHERE {w.sql()}", *w.params))
    return found


@dataclass(frozen=True, slots=True)
class DeviceQuery:
    """The devices page's request, cleaned: anything out of range falls back to the default."""

    q: str = ""
    application_id: str | None = None
    sort: str = "name"
    offset: int = 0

    @classmethod
    def of(cls, params: dict[str, str]) -> DeviceQuery:
        q = params.get("q", "").strip()[:MAX_QUERY].replace("\x00", "")
        app = params.get("application_id", "").strip() or None
        sort = params.get("sort", "name")
        offset = params.get("offset", "0")
        return cls(q, app, sort if sort in SORTS else "name",
                   min(int(offset), MAX_OFFSET) if offset.isascii() and offset.isdigit() and len(offset) < 12 else 0)

    def link(self, **changes: Any) -> str:
        """The devices page's URL for this query with ``changes`` (e.g. ``offset=50``); defaults left out."""
        q = replace(self, **changes)
        params = {"q": q.q, "application_id": q.application_id or "", "sort": "" if q.sort == "name" else q.sort,
                  "offset": str(q.offset) if q.offset else ""}
        encoded = urlencode({k: v for k, v in params.items() if v})
        return f"/devices?{encoded}" if encoded else "/devices"


class NoSuchApplication(Exception):
    """The filter names an application that does not exist for this user (or is another organization's)."""


@dataclass(frozen=True, slots=True)
class DevicePage:
    rows: list[dict[str, Any]]
    total: int
    applications: list[dict[str, Any]]      # for the filter: every application the user may see (up to a limit)


async def devices(pool: asyncpg.Pool, who: Principal, query: DeviceQuery) -> DevicePage:
    """One page of the devices ``who`` may see, filtered and sorted as asked, each with its application's
    name and when it was last heard."""
    w = Where()
    async with pool.acquire() as conn:
        if query.application_id is not None:
            await _check_application(conn, who, query.application_id)
            w = w.add("t.application_id = {}", query.application_id)
        if query.q:
            pat = search_pattern(query.q)
            w = w.add("(t.name ILIKE {} OR t.dev_eui ILIKE {} OR t.imei ILIKE {} OR t.tags::text ILIKE {})",
                      pat, pat, pat, pat)
        rows, total = await DEVICES.page(conn, who, w, Paging(limit=PAGE_SIZE, offset=query.offset),
                                         order=SORTS[query.sort])
        apps, _ = await APPLICATIONS.page(conn, who, Where(), Paging(limit=MAX_APPLICATIONS_LISTED, offset=0),
                                          order="t.name, t.id")
        seen = {r["device_id"]: r["last_seen"] for r in await conn.fetch(
            "SELECT device_id, last_seen FROM device_state WHERE device_id = ANY($1::uuid[])",
            [r["id"] for r in rows])}
    names = {a["id"]: a["name"] for a in apps}
    missing = {r["application_id"] for r in rows} - names.keys()
    if missing:   # more applications than the filter lists: name the ones on this page too
        async with pool.acquire() as conn:
            names |= {r["id"]: r["name"] for r in await conn.fetch(
                "SELECT id, name FROM applications WHERE id = ANY($1::uuid[])", list(missing))}
    shown = [{**r, "application_name": names.get(r["application_id"], ""), "last_seen": seen.get(r["id"])}
             for r in rows]
    return DevicePage(shown, total, apps)


async def _check_application(conn: asyncpg.Connection, who: Principal, application_id: str) -> None:
    try:
        UUID(application_id)
    except ValueError:
        raise NoSuchApplication from None
    w = APPLICATIONS.scoped(who, Where().add("t.id = {}::uuid", application_id))
    if not await conn.fetchval(f"SELECT count(*) FROM applications t WHERE {w.sql()}", *w.params):
        raise NoSuchApplication
