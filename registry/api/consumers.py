"""Consumers (where a department's data goes) and subscriptions (which data goes there).

Credentials (the signing secret, extra headers, the userinfo, query and fragment of the URL) are
encrypted at rest and never returned; ``has_secret`` says whether one is set, and rotate-secret
issues a new one, shown once. The URL is shown, stored in ``url`` and written to the audit log in
its masked form (``registry.consumer_url``); a PATCH that sends that masked URL back unchanged keeps
the stored credentials, any other URL replaces them. Where a URL may point: ``consumer_urls``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import asyncpg
import orjson
from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from registry.api.auth import IfMatch, Who
from registry.api.common import (
    EXAMPLE_APP,
    EXAMPLE_CONSUMER,
    EXAMPLE_ORG,
    Page,
    Paging,
    Stamped,
    Table,
    Where,
    audit_create,
    audited,
    changes_of,
    with_etag,
)
from registry.api.consumer_urls import check_target, check_url
from registry.api.context import ApiContext
from registry.api.decoders import decoder_usable
from registry.api.errors import ApiError, not_found
from registry.api.json_body import JsonBodyRoute
from registry.api.organizations import require_organization
from registry.api.replays import DEFAULT_RATE, MAX_RATE, create_job, replay_range
from registry.consumer_url import mask_url
from registry.secrets import new_token
from registry.store import stored_url

Format = Literal["native", "senml", "raw"]
HeaderName = Annotated[str, Field(max_length=100, pattern=r"^[A-Za-z0-9-]+$")]
Headers = dict[HeaderName, Annotated[str, Field(max_length=2000, pattern=r"^[^\r\n\x00]*$",
                                                description="no line breaks or NUL")]]
CONSUMERS = Table("consumer", "consumers", "t.organization_id",
                  "t.id, t.organization_id, t.name, t.kind, t.url, t.format, t.qos, t.batch_size, t.batch_wait_ms,"
                  " t.timeout_s, t.enabled, t.options, t.secret_enc IS NOT NULL AS has_secret,"
                  " t.headers_enc IS NOT NULL AS has_headers, t.created_at, t.updated_at, t.version")
_SUB_ORG = "(SELECT c.organization_id FROM consumers c WHERE c.id = t.consumer_id)"
SUBSCRIPTIONS = Table("subscription", "subscriptions", _SUB_ORG,
                      "t.id, t.consumer_id, t.application_id, t.device_ids, t.decoder, t.tags, t.created_at,"
                      " t.created_at AS updated_at, t.version, t.live_from,"
                      " (SELECT r.id FROM replays r WHERE r.subscription_id = t.id LIMIT 1) AS backfill_id")
DELIVERY_ORDERS = ("fresh-first", "strict")     # what distributor.delivery.policy.ORDERS understands
OPTIONS_HELP = ('concurrency, max_attempts, max_age_s, retry_base_s, ...; order: "fresh-first" (default: live'
                ' messages go out while a backlog drains) or "strict" (arrival order: new messages wait behind a'
                ' backlog)')


def check_order(options: dict[str, Any] | None) -> dict[str, Any] | None:
    """``options.order`` must be one the delivery lanes know (anything else would silently mean fresh-first)."""
    if options is not None and "order" in options and options["order"] not in DELIVERY_ORDERS:
        raise ValueError('order must be "fresh-first" or "strict"')
    return options


class ConsumerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: Format = "native"
    qos: Literal[0, 1] = Field(1, description="MQTT: 1 waits for the broker's acknowledgement")
    batch_size: int = Field(1, ge=1, le=10_000, description="HTTP: messages per request (>1 sends a JSON array)")
    batch_wait_ms: int = Field(0, ge=0, le=60_000)
    timeout_s: float = Field(10.0, gt=0, le=300)
    enabled: bool = True
    options: dict[str, Any] = Field(default_factory=dict, description=OPTIONS_HELP)

    @field_validator("options")
    @classmethod
    def _known_order(cls, value: dict[str, Any]) -> dict[str, Any] | None:
        return check_order(value)


class ConsumerIn(ConsumerSettings):
    """Where messages go: a webhook (``http``) or a broker topic (``mqtt``), in one format."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"organization_id": EXAMPLE_ORG, "name": "climate dept", "kind": "http",
         "url": "https://dept.example/hook", "format": "native", "secret": "at least 8 characters"},
        {"organization_id": EXAMPLE_ORG, "name": "city broker", "kind": "mqtt",
         "url": "mqtts://user:password@broker.example:8883/city/{device}", "format": "senml"}]})
    organization_id: UUID
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["http", "mqtt"]
    url: str = Field(min_length=1, max_length=2000,
                     description="http(s)://... or mqtt(s)://[user:pass@]host:port/topic-template; credentials"
                                 " in it (userinfo, query, fragment) are stored encrypted and shown as ***")
    secret: str | None = Field(None, min_length=8, max_length=500, description="HTTP: HMAC signing secret")
    headers: Headers | None = Field(None, description="HTTP: extra request headers, e.g. Authorization")


class ConsumerPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200)
    url: str | None = Field(None, min_length=1, max_length=2000)
    format: Format | None = None
    qos: Literal[0, 1] | None = None
    batch_size: int | None = Field(None, ge=1, le=10_000)
    batch_wait_ms: int | None = Field(None, ge=0, le=60_000)
    timeout_s: float | None = Field(None, gt=0, le=300)
    enabled: bool | None = None
    options: dict[str, Any] | None = Field(None, description=OPTIONS_HELP)
    secret: str | None = Field(None, min_length=8, max_length=500)
    headers: Headers | None = None

    @field_validator("options")
    @classmethod
    def _known_order(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_order(value)


class Consumer(Stamped):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"id": EXAMPLE_CONSUMER, "organization_id": EXAMPLE_ORG, "name": "climate dept",
         "kind": "http", "url": "https://dept.example/hook", "format": "native", "qos": 1, "batch_size": 1,
         "batch_wait_ms": 0, "timeout_s": 10.0, "enabled": True, "options": {}, "has_secret": True,
         "has_headers": False, "created_at": "2026-03-01T09:00:00Z", "updated_at": "2026-03-01T09:00:00Z",
         "version": 1}]})
    organization_id: UUID
    name: str
    kind: str
    url: str = Field(description="userinfo, query values and fragment are shown as ***; send this URL back"
                                 " unchanged to keep them")
    format: str
    qos: int
    batch_size: int
    batch_wait_ms: int
    timeout_s: float
    enabled: bool
    options: dict[str, Any]
    has_secret: bool
    has_headers: bool


class ConsumerSecret(BaseModel):
    secret: str = Field(description="shown once: the new HMAC signing secret")


class SubscriptionIn(BaseModel):
    """Which messages a consumer gets: by application, device ids, decoder and/or tags (all must match)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"consumer_id": EXAMPLE_CONSUMER, "application_id": EXAMPLE_APP}]})
    consumer_id: UUID
    application_id: UUID | None = None
    device_ids: list[UUID] = Field(default_factory=list, max_length=10_000)
    decoder: str | None = Field(None, max_length=200)
    tags: dict[Annotated[str, Field(max_length=100)], Annotated[str, Field(max_length=500)]] = Field(
        default_factory=dict)
    backfill_from: datetime | None = Field(
        None, description="also deliver the matching stored messages received since this time, first, as a"
                          " backfill (a replay job): no gap and no duplicate where the live messages begin")
    backfill_rate: int = Field(DEFAULT_RATE, ge=1, le=MAX_RATE, description="the backfill's messages per second")


class Subscription(Stamped):
    consumer_id: UUID
    application_id: UUID | None
    device_ids: list[UUID]
    decoder: str | None
    tags: dict[str, str]
    live_from: datetime | None = Field(description="with a backfill: live messages are those received from here on")
    backfill_id: UUID | None = Field(description="with a backfill: its replay job (GET /api/v1/replays/{id})")


def consumer_out(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "url": mask_url(row["url"])}      # stored masked already; masking again costs nothing


def consumer_shown(row: dict[str, Any]) -> dict[str, Any]:
    return Consumer.model_validate(consumer_out(row)).model_dump(mode="json")


def subscription_shown(row: dict[str, Any]) -> dict[str, Any]:
    return Subscription.model_validate(row).model_dump(mode="json")


async def check_targets(conn: asyncpg.Connection, organization_id: str, body: SubscriptionIn) -> None:
    """Everything a subscription names must be in the consumer's organization (else 404), and its decoder one
    the organization may use (else 422, the same answer as for a decoder that does not exist)."""
    if body.application_id is not None and await conn.fetchval(
            "SELECT organization_id FROM applications WHERE id = $1", str(body.application_id)) != UUID(
            organization_id):
        raise not_found("application")
    if body.device_ids:
        found = await conn.fetchval(
            "SELECT count(*) FROM devices d JOIN applications a ON a.id = d.application_id"
            " WHERE d.id = ANY($1::uuid[]) AND a.organization_id = $2", [str(i) for i in body.device_ids],
            organization_id)
        if found != len(set(body.device_ids)):
            raise not_found("device")
    if body.decoder is not None and not await decoder_usable(conn, body.decoder, organization_id):
        raise ApiError(422, f"no decoder {body.decoder!r}; see GET /api/v1/decoders")


def routes(ctx: ApiContext) -> APIRouter:
    r = APIRouter(route_class=JsonBodyRoute)

    @r.post("/consumers", status_code=201, response_model=Consumer, tags=["consumers"])
    async def create_consumer(body: ConsumerIn, who: Who, response: Response) -> dict[str, Any]:
        check_url(body.kind, body.url)
        async with ctx.pool.acquire() as conn:
            await require_organization(conn, who, body.organization_id)
        who.require("write")
        await check_target(ctx.targets, body.url)     # DNS: with no database connection held
        async with ctx.pool.acquire() as conn, conn.transaction():
            row_id = await conn.fetchval(
                "INSERT INTO consumers (organization_id, name, kind, url, url_enc, format, secret_enc, headers_enc,"
                " qos, batch_size, batch_wait_ms, timeout_s, enabled, options)"
                " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14) RETURNING id",
                str(body.organization_id), body.name, body.kind, *stored_url(ctx.box, body.url), body.format,
                ctx.box.encrypt(body.secret) if body.secret else None,
                ctx.box.encrypt(orjson.dumps(body.headers).decode()) if body.headers else None,
                body.qos, body.batch_size, body.batch_wait_ms, body.timeout_s, body.enabled, body.options)
            row = await CONSUMERS.get(conn, who, row_id)
            await audit_create(conn, who, "consumer", row, consumer_shown(row))
        with_etag(response, row["version"])
        return consumer_out(row)

    @r.get("/consumers", response_model=Page[Consumer], tags=["consumers"])
    async def list_consumers(who: Who, paging: Annotated[Paging, Depends()], organization_id: UUID | None = None,
                             kind: Literal["http", "mqtt"] | None = None) -> dict[str, Any]:
        w = Where()
        if organization_id is not None:
            w = w.add("t.organization_id = {}", str(organization_id))
        if kind is not None:
            w = w.add("t.kind = {}", kind)
        async with ctx.pool.acquire() as conn:
            items, total = await CONSUMERS.page(conn, who, w, paging, order="t.name, t.id")
        return paging.result([consumer_out(i) for i in items], total)

    @r.get("/consumers/{consumer_id}", response_model=Consumer, tags=["consumers"])
    async def get_consumer(consumer_id: UUID, who: Who, response: Response) -> dict[str, Any]:
        return consumer_out(await CONSUMERS.read(ctx.pool, who, consumer_id, response))

    @r.patch("/consumers/{consumer_id}", response_model=Consumer, tags=["consumers"])
    async def update_consumer(consumer_id: UUID, body: ConsumerPatch, who: Who, response: Response,
                              if_match: IfMatch = None) -> dict[str, Any]:
        if body.url is not None:                 # checked first, with no database connection held during DNS
            async with ctx.pool.acquire() as conn:
                before = await CONSUMERS.get(conn, who, consumer_id)
            who.require("write")
            if body.url != before["url"]:
                check_url(before["kind"], body.url)
                await check_target(ctx.targets, body.url)
        async with ctx.pool.acquire() as conn, conn.transaction():
            current = await CONSUMERS.get(conn, who, consumer_id, lock=True)
            who.require("write")
            changes = changes_of(body, nullable=frozenset({"secret", "headers"}))
            if "url" in changes and changes["url"] == current["url"]:
                del changes["url"]               # the masked URL sent back as it was read: keep the credentials
            if "url" in changes:
                check_url(current["kind"], changes["url"])
                changes["url"], changes["url_enc"] = stored_url(ctx.box, changes["url"])
            if "secret" in changes:
                secret = changes.pop("secret")
                changes["secret_enc"] = ctx.box.encrypt(secret) if secret else None
            if "headers" in changes:
                headers = changes.pop("headers")
                changes["headers_enc"] = ctx.box.encrypt(orjson.dumps(headers).decode()) if headers else None
            row = await CONSUMERS.update(conn, who, current, changes, if_match, consumer_shown)
        with_etag(response, row["version"])
        return consumer_out(row)

    @r.delete("/consumers/{consumer_id}", status_code=204, tags=["consumers"])
    async def delete_consumer(consumer_id: UUID, who: Who, if_match: IfMatch = None) -> Response:
        async with ctx.pool.acquire() as conn, conn.transaction():
            before = await CONSUMERS.get(conn, who, consumer_id, lock=True)
            who.require("write")
            await CONSUMERS.delete(conn, who, before, if_match, consumer_shown)
        return Response(status_code=204)

    @r.post("/consumers/{consumer_id}/rotate-secret", response_model=ConsumerSecret, tags=["consumers"],
            summary="Issue a new HMAC signing secret; deliveries are signed with it from now on")
    async def rotate_secret(consumer_id: UUID, who: Who) -> dict[str, str]:
        async with ctx.pool.acquire() as conn, conn.transaction():
            row = await CONSUMERS.get(conn, who, consumer_id, lock=True)
            who.require("write")
            secret = new_token("iotd_ws")
            await conn.execute("UPDATE consumers SET secret_enc = $2, version = version + 1, updated_at = now()"
                               " WHERE id = $1", str(consumer_id), ctx.box.encrypt(secret))
            await audited(conn, who, "rotate", "consumer", str(consumer_id), str(row["organization_id"]),
                          after={"secret": "rotated"})
        return {"secret": secret}

    @r.post("/subscriptions", status_code=201, response_model=Subscription, tags=["subscriptions"])
    async def create_subscription(body: SubscriptionIn, who: Who, response: Response) -> dict[str, Any]:
        if not (body.application_id or body.device_ids or body.decoder or body.tags):
            raise ApiError(422, "a subscription needs application_id, device_ids, decoder or tags")
        async with ctx.pool.acquire() as conn, conn.transaction():
            consumer = await CONSUMERS.get(conn, who, body.consumer_id)
            who.require("write")
            await check_targets(conn, str(consumer["organization_id"]), body)
            start = None
            if body.backfill_from is not None:
                start, _ = replay_range(body.backfill_from, None)
            row_id, live_from = await conn.fetchrow(
                "INSERT INTO subscriptions (consumer_id, application_id, device_ids, decoder, tags, live_from)"
                " VALUES ($1, $2, $3::uuid[], $4, $5, CASE WHEN $6 THEN now() + make_interval(secs => $7) END)"
                " RETURNING id, live_from", str(body.consumer_id),
                str(body.application_id) if body.application_id else None, [str(d) for d in body.device_ids],
                body.decoder, body.tags, start is not None, ctx.backfill_seam_s)
            if start is not None:
                await create_job(conn, who, kind="backfill", organization_id=str(consumer["organization_id"]),
                                 start=start, end=live_from, rate=body.backfill_rate, consumer_id=str(body.consumer_id),
                                 subscription_id=str(row_id))
            row = await SUBSCRIPTIONS.get(conn, who, row_id)
            await audit_create(conn, who, "subscription", row, subscription_shown(row))
        with_etag(response, row["version"])
        return row

    @r.get("/subscriptions", response_model=Page[Subscription], tags=["subscriptions"])
    async def list_subscriptions(who: Who, paging: Annotated[Paging, Depends()], consumer_id: UUID | None = None,
                                 application_id: UUID | None = None,
                                 decoder: str | None = Query(None, max_length=200)) -> dict[str, Any]:
        w = Where()
        if consumer_id is not None:
            w = w.add("t.consumer_id = {}", str(consumer_id))
        if application_id is not None:
            w = w.add("t.application_id = {}", str(application_id))
        if decoder is not None:
            w = w.add("t.decoder = {}", decoder)
        async with ctx.pool.acquire() as conn:
            items, total = await SUBSCRIPTIONS.page(conn, who, w, paging)
        return paging.result(items, total)

    @r.get("/subscriptions/{subscription_id}", response_model=Subscription, tags=["subscriptions"])
    async def get_subscription(subscription_id: UUID, who: Who, response: Response) -> dict[str, Any]:
        return await SUBSCRIPTIONS.read(ctx.pool, who, subscription_id, response)

    @r.delete("/subscriptions/{subscription_id}", status_code=204, tags=["subscriptions"])
    async def delete_subscription(subscription_id: UUID, who: Who, if_match: IfMatch = None) -> Response:
        async with ctx.pool.acquire() as conn, conn.transaction():
            before = await SUBSCRIPTIONS.get(conn, who, subscription_id, lock=True)
            who.require("write")
            await SUBSCRIPTIONS.delete(conn, who, before, if_match, subscription_shown)
        return Response(status_code=204)

    return r
