"""What departments and IT look at when something is off: a consumer's delivery log and health,
dead letters (inspect, replay, discard), unknown devices (and registering one), the audit log.

Unknown devices follow ``registry.tenancy`` (rules 4 and 5): global keys see them all, an
organization's keys those heard under the ChirpStack tenants mapped to it; registering one needs a
global admin key, or a write key of the organization it was heard for. Anyone else gets the same
404 as for an EUI never heard.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from registry.api.auth import Principal, Who
from registry.api.common import Page, Paging, Where, audit_create, audited, search_pattern
from registry.api.consumers import CONSUMERS
from registry.api.context import ApiContext
from registry.api.decoders import decoder_usable
from registry.api.devices import DEVICES, DeviceCreated, check_application, device_shown, insert_device
from registry.api.errors import ApiError, not_found
from registry.api.json_body import JsonBodyRoute
from registry.dead_letters import DeadLetterFilter, discard, get_dead_letter, list_dead_letters, replay
from registry.delivery_status import delivery_status
from registry.device_rules import clean_device
from registry.store import normalize_eui
from registry.tenancy import owner_sql


class DeliveryLog(BaseModel):
    consumer_id: UUID
    health: str = Field(description="circuit-breaker state, kept for compatibility: closed (healthy), half_open"
                                    " (probing) or open (failing); `status` says it in words")
    status: str = Field(description="delivery health in words: \"healthy\", \"healthy, catching up; N deliveries"
                                    " waiting\", \"probing: …\" or \"failing, paused until <time>\"",
                        examples=["failing, paused until 2026-11-22 10:05:00 UTC; 120 deliveries waiting"])
    delivered: int
    failed: int
    error_rate: float = Field(description="failed / (delivered + failed) since the consumer was created")
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_failure_status: int | None
    last_failure_reason: str | None
    pending: int = Field(description="deliveries waiting for a retry")
    oldest_pending_at: datetime | None
    next_retry_at: datetime | None = Field(None, description="when the earliest waiting delivery is due")
    dead_letters: int


class DeadLetter(BaseModel):
    id: int
    consumer_id: UUID
    message_id: str
    attempts: int
    last_error: str | None
    last_status: int | None
    reason: str
    first_failed_at: datetime
    dead_at: datetime


class DeadLetterDetail(DeadLetter):
    body: str | None = None
    body_hex: str | None = None
    history: list[dict[str, Any]]
    last_response: str | None
    topic_vars: dict[str, Any]


class DeadLetterSelection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] = Field(default_factory=list, max_length=10_000,
                                                                description="these dead letters")
    consumer_id: UUID | None = Field(None, description="all of one consumer's dead letters")
    all: bool = Field(False, description="every dead letter this key can see; needed when nothing else is given")


class Affected(BaseModel):
    count: int


class UnknownDevice(BaseModel):
    source: str
    identifier: str
    first_seen: datetime
    last_seen: datetime
    count: int
    detail: dict[str, Any]


class Registration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    application_id: UUID
    name: str | None = Field(None, min_length=1, max_length=200, description="default: the name ChirpStack gave")
    decoder: str | None = Field(None, max_length=200)
    tags: dict[str, str] = Field(default_factory=dict)


class AuditEntry(BaseModel):
    id: int
    at: datetime
    organization_id: UUID | None
    actor: str
    action: str
    resource: str
    resource_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


def routes(ctx: ApiContext) -> APIRouter:
    r = APIRouter(route_class=JsonBodyRoute)

    def selection(who: Principal, body: DeadLetterSelection) -> DeadLetterFilter:
        if not (body.ids or body.consumer_id or body.all):
            raise ApiError(422, "say which dead letters: ids, consumer_id, or all: true")
        return DeadLetterFilter(who.organization_id, str(body.consumer_id) if body.consumer_id else None,
                                tuple(body.ids))

    @r.get("/consumers/{consumer_id}/delivery-log", response_model=DeliveryLog, tags=["consumers"],
           summary="Health, last success and failure, error rate, backlog")
    async def delivery_log(consumer_id: UUID, who: Who) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn:
            await CONSUMERS.get(conn, who, consumer_id)
            stats = await conn.fetchrow("SELECT * FROM consumer_stats WHERE consumer_id = $1", str(consumer_id))
            pending = await conn.fetchrow("SELECT count(*) AS n, min(created_at) AS oldest,"
                                          " min(next_attempt_at) AS next_at, now() AS now FROM pending_deliveries"
                                          " WHERE consumer_id = $1", str(consumer_id))
            dead = await conn.fetchval("SELECT count(*) FROM dead_letters WHERE consumer_id = $1", str(consumer_id))
        s = dict(stats) if stats else {}
        delivered, failed = int(s.get("delivered", 0)), int(s.get("failed", 0))
        circuit = s.get("circuit", "closed")
        return {"consumer_id": consumer_id, "health": circuit,
                "status": delivery_status(circuit, pending["n"], pending["next_at"], pending["now"]),
                "next_retry_at": pending["next_at"], "delivered": delivered,
                "failed": failed, "error_rate": failed / (delivered + failed) if delivered + failed else 0.0,
                "last_success_at": s.get("last_success_at"), "last_failure_at": s.get("last_failure_at"),
                "last_failure_status": s.get("last_failure_status"),
                "last_failure_reason": s.get("last_failure_reason"),
                "pending": pending["n"], "oldest_pending_at": pending["oldest"], "dead_letters": dead}

    @r.get("/dead-letters", response_model=Page[DeadLetter], tags=["dead-letters"])
    async def dead_letters(who: Who, paging: Annotated[Paging, Depends()], consumer_id: UUID | None = None,
                           message_id: str | None = Query(None, max_length=100)) -> dict[str, Any]:
        f = DeadLetterFilter(who.organization_id, str(consumer_id) if consumer_id else None, message_id=message_id)
        async with ctx.pool.acquire() as conn:
            items = await list_dead_letters(conn, f, paging.limit, paging.offset)
            where, params = f.where()
            total = await conn.fetchval("SELECT count(*) FROM dead_letters d JOIN consumers c ON c.id = d.consumer_id"
                                        f" WHERE {where}", *params)
        return paging.result(items, total)

    @r.get("/dead-letters/{dead_letter_id}", response_model=DeadLetterDetail, tags=["dead-letters"],
           summary="One dead letter with the message and every attempt")
    async def dead_letter(dead_letter_id: Annotated[int, Path(ge=1, le=2**63 - 1)], who: Who) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn:
            row = await get_dead_letter(conn, DeadLetterFilter(who.organization_id, ids=(dead_letter_id,)))
        if row is None:
            raise not_found("dead letter")
        return row

    async def act_on(who: Principal, body: DeadLetterSelection, action: str,
                     act: Callable[[asyncpg.Connection, DeadLetterFilter], Awaitable[int]]) -> dict[str, int]:
        who.require("write")
        f = selection(who, body)
        async with ctx.pool.acquire() as conn, conn.transaction():
            n = await act(conn, f)
            await audited(conn, who, action, "dead_letters", None, who.organization_id,
                          after={**body.model_dump(mode="json"), "count": n})
        return {"count": n}

    @r.post("/dead-letters/replay", response_model=Affected, tags=["dead-letters"],
            summary="Send dead letters again (one, several, a consumer's, or all)")
    async def replay_dead_letters(body: DeadLetterSelection, who: Who) -> dict[str, int]:
        return await act_on(who, body, "replay", replay)

    @r.post("/dead-letters/discard", response_model=Affected, tags=["dead-letters"])
    async def discard_dead_letters(body: DeadLetterSelection, who: Who) -> dict[str, int]:
        return await act_on(who, body, "discard", discard)

    @r.get("/unknown-devices", response_model=Page[UnknownDevice], tags=["devices"],
           summary="Devices that sent data but are not registered (global keys: all; an organization's keys: "
                   "those heard under the ChirpStack tenants mapped to it)")
    async def unknown_devices(who: Who, paging: Annotated[Paging, Depends()],
                              q: str | None = Query(None, max_length=100)) -> dict[str, Any]:
        w = Where() if not q else Where().add("(identifier ILIKE {} OR detail::text ILIKE {})",
                                              search_pattern(q), search_pattern(q))
        if not who.is_global:
            w = w.add(f"{owner_sql('detail')} = {{}}::uuid", who.organization_id)
        async with ctx.pool.acquire() as conn:
            total = await conn.fetchval(f"SELECT count(*) FROM unknown_devices WHERE {w.sql()}", *w.params)
            rows = await conn.fetch(f"SELECT * FROM unknown_devices WHERE {w.sql()} ORDER BY last_seen DESC"
                                    f" LIMIT {paging.limit} OFFSET {paging.offset}", *w.params)
        return paging.result([dict(x) for x in rows], total)

    @r.post("/unknown-devices/{dev_eui}/register", status_code=201, response_model=DeviceCreated, tags=["devices"],
            summary="Register an unknown LoRaWAN device in one step")
    async def register_unknown(dev_eui: str, body: Registration, who: Who, response: Response) -> dict[str, Any]:
        eui = normalize_eui(dev_eui)
        async with ctx.pool.acquire() as conn, conn.transaction():
            org = await check_application(conn, who, body.application_id)
            who.require("write")
            if body.decoder and not await decoder_usable(conn, body.decoder, org):  # never another tenant's
                raise ApiError(422, f"no decoder {body.decoder!r}; see GET /api/v1/decoders")
            w = Where().add("identifier = {}", eui)
            if not who.is_global_admin:
                w = w.add(f"{owner_sql('detail')} = {{}}::uuid", who.organization_id)
            seen = await conn.fetchrow(f"SELECT detail FROM unknown_devices WHERE {w.sql()}"
                                       " ORDER BY last_seen DESC LIMIT 1", *w.params)
            if seen is None and not who.is_global_admin:   # not heard, or not heard for this organization
                raise not_found("unknown device")
            name = body.name or str((seen["detail"] if seen else {}).get("device_name") or eui)
            fields = clean_device({"application_id": body.application_id, "name": name, "kind": "lorawan",
                                   "dev_eui": eui, "decoder": body.decoder, "tags": body.tags})
            device_id, _ = await insert_device(conn, ctx.box, fields)
            await conn.execute("DELETE FROM unknown_devices WHERE identifier = $1", eui)
            row = await DEVICES.get(conn, who, device_id)
            await audit_create(conn, who, "device", row, device_shown(row))
        response.headers["ETag"] = f'"{row["version"]}"'
        return {**row, "ingest_key": None}

    @r.get("/audit-log", response_model=Page[AuditEntry], tags=["audit"], summary="Who changed what, and when")
    async def audit_log(who: Who, paging: Annotated[Paging, Depends()],
                        resource: str | None = Query(None, max_length=50),
                        resource_id: str | None = Query(None, max_length=100),
                        since: datetime | None = None) -> dict[str, Any]:
        who.require("admin")
        w = Where()
        if who.organization_id is not None:
            w = w.add("organization_id = {}::uuid", who.organization_id)
        if resource is not None:
            w = w.add("resource = {}", resource)
        if resource_id is not None:
            w = w.add("resource_id = {}", resource_id)
        if since is not None:
            w = w.add("at >= {}", since)
        async with ctx.pool.acquire() as conn:
            total = await conn.fetchval(f"SELECT count(*) FROM audit_log WHERE {w.sql()}", *w.params)
            rows = await conn.fetch(f"SELECT * FROM audit_log WHERE {w.sql()} ORDER BY at DESC, id DESC"
                                    f" LIMIT {paging.limit} OFFSET {paging.offset}", *w.params)
        return paging.result([dict(x) for x in rows], total)

    return r



