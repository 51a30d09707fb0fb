"""Replays (issue 17): stored messages re-delivered to a consumer, e.g. after a department's own database
lost a day. ``POST /consumers/{id}/replay`` makes a job; a distributor instance runs it
(``distributor.replay``) at its ``rate``, behind live traffic, and the job's ``state``, ``position``,
``progress`` and counts say how far it is; ``POST /replays/{id}/cancel`` stops it. A subscription made with
``backfill_from`` makes a job of kind ``backfill`` (``consumers.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from registry.api.auth import Who
from registry.api.common import Page, Paging, Table, Where, audited, with_etag
from registry.api.context import ApiContext
from registry.api.decoders import decoder_usable
from registry.api.errors import ApiError, not_found
from registry.api.json_body import JsonBodyRoute

MAX_SPAN = timedelta(days=3650)
DEFAULT_RATE = 500
MAX_RATE = 10_000
REPLAYS = Table("replay", "replays", "t.organization_id",
                "t.id, t.consumer_id, t.consumer_ids, t.kind, t.subscription_id, t.decoder, t.application_id,"
                " t.device_ids, t.from_at, t.to_at, t.rate, t.state, t.cursor_at, t.sent, t.spilled, t.skipped,"
                " t.waiting, t.error, t.created_by, t.created_at, t.started_at, t.finished_at, t.updated_at,"
                " t.version")
INSERT = """
INSERT INTO replays (consumer_id, consumer_ids, organization_id, kind, subscription_id, decoder, application_id,
                     device_ids, from_at, to_at, rate, created_by)
VALUES ($1, $2::uuid[], $3, $4, $5, $6, $7, $8::uuid[], $9, $10, $11, $12) RETURNING id
"""


class ReplayIn(BaseModel):
    """Which stored messages go to the consumer again: received in ``[from, to)``, of what the consumer's
    subscriptions match now, optionally only of one application or of some devices."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, json_schema_extra={"examples": [
        {"from": "2026-11-28T00:00:00Z", "to": "2026-11-29T00:00:00Z"}]})
    start: datetime = Field(alias="from", description="from this time (received_at)")
    end: datetime | None = Field(None, alias="to", description="up to, not including, this time (default: now)")
    application_id: UUID | None = None
    device_ids: list[UUID] = Field(default_factory=list, max_length=10_000)
    rate: int = Field(DEFAULT_RATE, ge=1, le=MAX_RATE, description="messages per second at most")


class ReprocessIn(BaseModel):
    """Which stored uplinks of the decoder's devices are decoded again with its current version."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, json_schema_extra={"examples": [
        {"from": "2026-11-01T00:00:00Z", "consumer_ids": ["6f1c0b8e-4b7a-4d3e-9a51-2f0d1c3b5a77"]}]})
    start: datetime = Field(alias="from", description="from this time (received_at)")
    end: datetime | None = Field(None, alias="to", description="up to, not including, this time (default: now)")
    organization_id: UUID | None = Field(None, description="whose devices (a global key must say; default: the key's)")
    application_id: UUID | None = None
    device_ids: list[UUID] = Field(default_factory=list, max_length=10_000)
    consumer_ids: list[UUID] = Field(default_factory=list, max_length=100,
                                     description="deliver the new results to these consumers as replays (of what"
                                                 " they subscribe to); none: only the history is updated")
    rate: int = Field(DEFAULT_RATE, ge=1, le=MAX_RATE, description="messages per second at most")


class Replay(BaseModel):
    id: UUID
    kind: Literal["replay", "backfill", "reprocess"]
    consumer_id: UUID | None = Field(description="replay, backfill: where the messages go")
    consumer_ids: list[UUID] = Field(description="reprocess: who gets the re-decoded messages")
    subscription_id: UUID | None = Field(description="backfill: the subscription it fills")
    decoder: str | None = Field(description="reprocess: whose devices' uplinks are decoded again")
    application_id: UUID | None
    device_ids: list[UUID]
    start: datetime = Field(alias="from", serialization_alias="from")
    end: datetime = Field(alias="to", serialization_alias="to")
    rate: int
    state: Literal["queued", "running", "done", "cancelled", "failed"]
    position: datetime | None = Field(description="messages received up to this time are out")
    progress: float = Field(description="0..1: how much of the time range is done")
    sent: int = Field(description="messages delivered at once")
    spilled: int = Field(description="messages handed to the retry machinery (see pending deliveries)")
    skipped: int = Field(description="stored messages not (or no longer) for this consumer")
    waiting: str | None = Field(description="why the job does not advance now")
    error: str | None
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    version: int


def replay_out(row: dict[str, Any]) -> dict[str, Any]:
    start, end, position = row["from_at"], row["to_at"], row["cursor_at"]
    span = (end - start).total_seconds()
    if row["state"] == "done":
        progress = 1.0
    elif position is None or span <= 0:
        progress = 0.0
    else:
        progress = min(1.0, max(0.0, (position - start).total_seconds() / span))
    out = {k: v for k, v in row.items() if k not in ("from_at", "to_at", "cursor_at", "_org")}
    return {**out, "from": start, "to": end, "position": position, "progress": round(progress, 4)}


def replay_range(start: datetime, end: datetime | None) -> tuple[datetime, datetime]:
    """``[from, to)`` of stored messages: ``to`` is at most now; times without a zone are UTC."""
    now = datetime.now(UTC)
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start
    end = now if end is None else (end.replace(tzinfo=UTC) if end.tzinfo is None else end)
    end = min(end, now)
    if start >= end:
        raise ApiError(422, "from: must be before to (and before now)")
    if end - start > MAX_SPAN:
        raise ApiError(422, "from: a replay covers at most 3650 days")
    return start, end


async def check_selection(conn: asyncpg.Connection, organization_id: str, application_id: UUID | None,
                          device_ids: list[UUID]) -> None:
    """The application and devices a job names are the consumer's organization's (else 404)."""
    if application_id is not None and await conn.fetchval(
            "SELECT organization_id FROM applications WHERE id = $1", str(application_id)) != UUID(organization_id):
        raise not_found("application")
    if device_ids:
        found = await conn.fetchval(
            "SELECT count(*) FROM devices d JOIN applications a ON a.id = d.application_id"
            " WHERE d.id = ANY($1::uuid[]) AND a.organization_id = $2", [str(i) for i in device_ids], organization_id)
        if found != len(set(device_ids)):
            raise not_found("device")


async def create_job(conn: asyncpg.Connection, who: Who, *, kind: str, organization_id: str, start: datetime,
                     end: datetime, rate: int, consumer_id: str | None = None, consumer_ids: list[str] | None = None,
                     subscription_id: str | None = None, decoder: str | None = None,
                     application_id: UUID | None = None, device_ids: list[UUID] | None = None) -> dict[str, Any]:
    """Insert a job in the caller's transaction, audited; returns it as the API shows it."""
    job_id = await conn.fetchval(
        INSERT, consumer_id, consumer_ids or [], organization_id, kind, subscription_id, decoder,
        str(application_id) if application_id else None, [str(d) for d in device_ids or []], start, end, rate,
        who.actor)
    row = await REPLAYS.get(conn, who, job_id)
    shown = replay_out(row)
    await audited(conn, who, "create", "replay", str(job_id), organization_id,
                  after={k: str(v) if isinstance(v, (UUID, datetime)) else v for k, v in shown.items()
                         if k in ("kind", "consumer_id", "from", "to", "rate", "application_id", "decoder")})
    return shown


def routes(ctx: ApiContext) -> APIRouter:
    r = APIRouter(route_class=JsonBodyRoute, tags=["replays"])

    @r.post("/consumers/{consumer_id}/replay", status_code=202, response_model=Replay, response_model_by_alias=True,
            summary="Deliver the consumer's stored messages of a time range again, in time order, as replays")
    async def replay(consumer_id: UUID, body: ReplayIn, who: Who, response: Response) -> dict[str, Any]:
        start, end = replay_range(body.start, body.end)
        async with ctx.pool.acquire() as conn, conn.transaction():
            org = await conn.fetchval(
                f"SELECT t.organization_id FROM consumers t WHERE {_scoped(who, consumer_id).sql()}",
                *_scoped(who, consumer_id).params)
            if org is None:
                raise not_found("consumer")
            who.require("write")
            await check_selection(conn, str(org), body.application_id, body.device_ids)
            job = await create_job(conn, who, kind="replay", organization_id=str(org), start=start, end=end,
                                   rate=body.rate, consumer_id=str(consumer_id), application_id=body.application_id,
                                   device_ids=body.device_ids)
        response.headers["Location"] = f"/api/v1/replays/{job['id']}"
        return job

    @r.post("/decoders/{decoder_id}/reprocess", status_code=202, response_model=Replay,
            response_model_by_alias=True,
            summary="Decode the stored uplinks of this decoder's devices again with its current version, store the"
                    " new results and optionally deliver them to consumers as replays")
    async def reprocess(decoder_id: str, body: ReprocessIn, who: Who, response: Response) -> dict[str, Any]:
        start, end = replay_range(body.start, body.end)
        org = who.organization_id or (str(body.organization_id) if body.organization_id else None)
        if org is None:
            raise ApiError(422, "organization_id: a global key must say whose devices to reprocess")
        if body.organization_id is not None and str(body.organization_id) != org:
            raise not_found("organization")
        async with ctx.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT true FROM organizations WHERE id = $1", org):
                raise not_found("organization")
            if not await decoder_usable(conn, decoder_id, org):
                raise not_found("decoder")
            who.require("write")
            await check_selection(conn, org, body.application_id, body.device_ids)
            consumers = sorted({str(c) for c in body.consumer_ids})
            if consumers and await conn.fetchval(
                    "SELECT count(*) FROM consumers WHERE id = ANY($1::uuid[]) AND organization_id = $2",
                    consumers, org) != len(consumers):
                raise not_found("consumer")
            job = await create_job(conn, who, kind="reprocess", organization_id=org, start=start, end=end,
                                   rate=body.rate, consumer_ids=consumers, decoder=decoder_id,
                                   application_id=body.application_id, device_ids=body.device_ids)
        response.headers["Location"] = f"/api/v1/replays/{job['id']}"
        return job

    @r.get("/consumers/{consumer_id}/replays", response_model=Page[Replay], response_model_by_alias=True,
           summary="The consumer's replay and backfill jobs, newest first")
    async def consumer_replays(consumer_id: UUID, who: Who, paging: Annotated[Paging, Depends()]) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn:
            if await conn.fetchval(f"SELECT 1 FROM consumers t WHERE {_scoped(who, consumer_id).sql()}",
                                   *_scoped(who, consumer_id).params) is None:
                raise not_found("consumer")
            items, total = await REPLAYS.page(conn, who, Where().add("t.consumer_id = {}", str(consumer_id)), paging,
                                              order="t.created_at DESC, t.id")
        return paging.result([replay_out(i) for i in items], total)

    @r.get("/replays/{replay_id}", response_model=Replay, response_model_by_alias=True,
           summary="One replay, backfill or reprocess job: its state and progress")
    async def get_replay(replay_id: UUID, who: Who, response: Response) -> dict[str, Any]:
        row = await REPLAYS.read(ctx.pool, who, replay_id, response)
        return replay_out(row)

    @r.post("/replays/{replay_id}/cancel", response_model=Replay, response_model_by_alias=True,
            summary="Stop a job that has not finished (what it sent stays sent)")
    async def cancel_replay(replay_id: UUID, who: Who, response: Response) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn, conn.transaction():
            row = await REPLAYS.get(conn, who, replay_id, lock=True)
            who.require("write")
            if row["state"] not in ("queued", "running"):
                raise ApiError(409, f"the job is {row['state']} already; nothing to cancel")
            await conn.execute("UPDATE replays SET state = 'cancelled', finished_at = now(), waiting = NULL,"
                               " updated_at = now(), version = version + 1 WHERE id = $1", str(replay_id))
            await audited(conn, who, "cancel", "replay", str(replay_id), str(row["_org"]))
            row = await REPLAYS.get(conn, who, replay_id)
        with_etag(response, row["version"])
        return replay_out(row)

    return r


def _scoped(who: Who, consumer_id: UUID) -> Where:
    w = Where().add("t.id = {}", str(consumer_id))
    if who.organization_id is not None:
        w = w.add("t.organization_id = {}::uuid", who.organization_id)
    return w
