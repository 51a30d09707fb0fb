"""Devices: LoRaWAN (dev_eui), NB-IoT (imei), generic HTTP and MQTT; their latest message,
statistics and ingest keys. Secrets (app_key, ingest key) go in, never come out.

Creating a device with an ingest key, rotating the key and deleting a device answer once this instance's
registry cache has the change (``registry.api.freshness``): a new key works, and an old key is refused,
from the moment the answer arrives.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from registry.api.auth import IfMatch, Principal, Who
from registry.api.common import (
    EXAMPLE_APP,
    EXAMPLE_ORG,
    Page,
    Paging,
    Stamped,
    Table,
    Where,
    audit_create,
    audited,
    search_pattern,
    with_etag,
)
from registry.api.context import ApiContext
from registry.api.decoders import decoder_usable
from registry.api.erasure import ERASE_HELP, erase_history_of, erase_late_arrivals, erasing
from registry.api.errors import ApiError, not_found
from registry.api.freshness import applied
from registry.api.json_body import JsonBodyRoute
from registry.device_rules import KEYED_KINDS, clean_device
from registry.secrets import SecretBox, hash_token, new_token

Kind = Literal["lorawan", "nbiot", "http", "mqtt"]
Tags = dict[Annotated[str, Field(max_length=100)], Annotated[str, Field(max_length=500)]]
_ORG = "(SELECT a.organization_id FROM applications a WHERE a.id = t.application_id)"
DEVICES = Table("device", "devices", _ORG,
                f"t.id, t.application_id, {_ORG} AS organization_id, t.name, t.kind, t.decoder, t.dev_eui,"
                " t.join_eui, t.imei, t.imsi, t.tags, t.lat, t.lon, t.interval_s, t.metadata,"
                " t.app_key_enc IS NOT NULL AS has_app_key, t.ingest_key_hash IS NOT NULL AS has_ingest_key,"
                " t.created_at, t.updated_at, t.version")
_EDITABLE = ("name", "decoder", "dev_eui", "join_eui", "imei", "imsi", "tags", "lat", "lon", "interval_s", "metadata")


class DeviceFields(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decoder: str | None = Field(None, max_length=200, description="decoder id (GET /api/v1/decoders)")
    dev_eui: str | None = Field(None, max_length=40, description="lorawan: 16 hex characters, unique")
    join_eui: str | None = Field(None, max_length=40)
    app_key: str | None = Field(None, max_length=64, description="lorawan: 32 hex characters; write-only")
    imei: str | None = Field(None, max_length=20, description="nbiot: 15 digits with check digit, unique")
    imsi: str | None = Field(None, max_length=20)
    tags: Tags = Field(default_factory=dict)
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    interval_s: int | None = Field(None, gt=0, le=366 * 86400, description="expected seconds between messages")
    metadata: dict[str, Any] = Field(default_factory=dict)


class DeviceIn(DeviceFields):
    """A device to register: ``kind`` says which identifier it needs (lorawan: dev_eui; nbiot: imei)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"application_id": EXAMPLE_APP, "name": "room 1.12", "kind": "lorawan", "dev_eui": "a81758fffe0312ab",
         "decoder": "elsys", "tags": {"school": "north"}, "interval_s": 600},
        {"application_id": EXAMPLE_APP, "name": "well 3", "kind": "nbiot", "imei": "490154203237518",
         "decoder": "cayenne-lpp"}]})
    application_id: UUID
    name: str = Field(min_length=1, max_length=200)
    kind: Kind


class DevicePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200)
    decoder: str | None = Field(None, max_length=200)
    dev_eui: str | None = Field(None, max_length=40)
    join_eui: str | None = Field(None, max_length=40)
    app_key: str | None = Field(None, max_length=64, description="write-only; set to replace")
    imei: str | None = Field(None, max_length=20)
    imsi: str | None = Field(None, max_length=20)
    tags: Tags | None = None
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    interval_s: int | None = Field(None, gt=0, le=366 * 86400)
    metadata: dict[str, Any] | None = None


_DEVICE_EXAMPLE: JsonDict = {
    "id": "0b5d2c1e-8f3a-4e6b-9c7d-1a2b3c4d5e6f", "application_id": EXAMPLE_APP, "organization_id": EXAMPLE_ORG,
    "name": "room 1.12", "kind": "lorawan", "decoder": "elsys", "dev_eui": "a81758fffe0312ab", "join_eui": None,
    "imei": None, "imsi": None, "tags": {"school": "north"}, "lat": 56.1629, "lon": 10.2039, "interval_s": 600,
    "metadata": {}, "has_app_key": False, "has_ingest_key": False, "created_at": "2026-03-01T09:00:00Z",
    "updated_at": "2026-03-01T09:00:00Z", "version": 1}


class Device(Stamped):
    model_config = ConfigDict(json_schema_extra={"examples": [_DEVICE_EXAMPLE]})
    application_id: UUID
    organization_id: UUID
    name: str
    kind: str
    decoder: str | None
    dev_eui: str | None
    join_eui: str | None
    imei: str | None
    imsi: str | None
    tags: dict[str, str]
    lat: float | None
    lon: float | None
    interval_s: int | None
    metadata: dict[str, Any]
    has_app_key: bool
    has_ingest_key: bool


class DeviceCreated(Device):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {**_DEVICE_EXAMPLE, "name": "well 3", "kind": "nbiot", "decoder": "cayenne-lpp", "dev_eui": None,
         "imei": "490154203237518", "has_ingest_key": True, "ingest_key": "iotd_ik_bVjEdinYc7QyBmpGkv02ur1BZMqpK"}]})
    ingest_key: str | None = Field(None, description="shown once: the device's key for POST /ingest/http")


class IngestKey(BaseModel):
    ingest_key: str = Field(description="shown once; the previous key stops working now")


class DayStats(BaseModel):
    day: date
    count: int
    best_rssi: int | None
    best_snr: float | None


class DeviceStats(BaseModel):
    last_seen: datetime | None
    message_count: int
    best_rssi: int | None
    best_snr: float | None
    days: list[DayStats]


class Latest(BaseModel):
    last_seen: datetime | None
    last_f_cnt: int | None
    message: dict[str, Any] | None
    battery_level: float | None = None
    margin: int | None = None
    joined_at: datetime | None = None


def device_shown(row: dict[str, Any]) -> dict[str, Any]:
    return Device.model_validate(row).model_dump(mode="json")


async def insert_device(conn: asyncpg.Connection, box: SecretBox, fields: dict[str, Any]) -> tuple[str, str | None]:
    """Insert a cleaned device; returns its id and, for devices that push, the new ingest key."""
    ingest_key = new_token("iotd_ik") if fields["kind"] in KEYED_KINDS else None
    app_key = fields.get("app_key")
    device_id = await conn.fetchval(
        "INSERT INTO devices (application_id, name, kind, decoder, dev_eui, join_eui, app_key_enc, imei, imsi,"
        " ingest_key_hash, tags, lat, lon, interval_s, metadata)"
        " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15) RETURNING id",
        str(fields["application_id"]), fields["name"], fields["kind"], fields.get("decoder"), fields.get("dev_eui"),
        fields.get("join_eui"), box.encrypt(app_key) if app_key else None, fields.get("imei"), fields.get("imsi"),
        hash_token(ingest_key) if ingest_key else None, fields.get("tags") or {}, fields.get("lat"),
        fields.get("lon"), fields.get("interval_s"), fields.get("metadata") or {})
    return str(device_id), ingest_key


async def check_application(conn: asyncpg.Connection, who: Principal, application_id: UUID | str) -> str:
    """The application's organization; 404 when it does not exist for this key."""
    org = await conn.fetchval("SELECT organization_id FROM applications WHERE id = $1", str(application_id))
    if org is None or not who.sees(org):
        raise not_found("application")
    return str(org)


def routes(ctx: ApiContext) -> APIRouter:
    r = APIRouter(route_class=JsonBodyRoute, tags=["devices"])

    async def check_decoder(conn: asyncpg.Connection, decoder: str | None, organization_id: str) -> None:
        if decoder and not await decoder_usable(conn, decoder, organization_id):
            raise ApiError(422, f"no decoder {decoder!r}; see GET /api/v1/decoders")

    @r.post("/devices", status_code=201, response_model=DeviceCreated)
    async def create_device(body: DeviceIn, who: Who, response: Response, request: Request) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn, conn.transaction():
            org = await check_application(conn, who, body.application_id)
            who.require("write")
            fields = clean_device(body.model_dump())
            await check_decoder(conn, fields.get("decoder"), org)
            device_id, ingest_key = await insert_device(conn, ctx.box, fields)
            row = await DEVICES.get(conn, who, device_id)
            await audit_create(conn, who, "device", row, device_shown(row))
        if ingest_key is not None:    # the key in this answer works from the moment the answer arrives
            await applied(request, [str(device_id)])
        with_etag(response, row["version"])
        return {**row, "ingest_key": ingest_key}

    @r.get("/devices", response_model=Page[Device])
    async def list_devices(
        who: Who, paging: Annotated[Paging, Depends()],
        application_id: UUID | None = None, organization_id: UUID | None = None, kind: Kind | None = None,
        decoder: str | None = Query(None, max_length=200),
        tag: Annotated[list[str], Query(max_length=20, description="key=value; repeat to require several")] = [],  # noqa: B006
        q: str | None = Query(None, max_length=200, description="search name, dev_eui, imei and tag values"),
    ) -> dict[str, Any]:
        w = Where()
        if application_id is not None:
            w = w.add("t.application_id = {}", str(application_id))
        if organization_id is not None:
            w = w.add(f"{_ORG} = {{}}", str(organization_id))
        if kind is not None:
            w = w.add("t.kind = {}", kind)
        if decoder is not None:
            w = w.add("t.decoder = {}", decoder)
        for pair in tag:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise ApiError(422, f"tag filters are key=value, got {pair!r}")
            w = w.add("t.tags @> {}", {key: value})
        if q:
            pat = search_pattern(q)
            w = w.add("(t.name ILIKE {} OR t.dev_eui ILIKE {} OR t.imei ILIKE {} OR t.tags::text ILIKE {})",
                      pat, pat, pat, pat)
        async with ctx.pool.acquire() as conn:
            items, total = await DEVICES.page(conn, who, w, paging, order="t.name, t.id")
        return paging.result(items, total)

    @r.get("/devices/{device_id}", response_model=Device)
    async def get_device(device_id: UUID, who: Who, response: Response) -> dict[str, Any]:
        return await DEVICES.read(ctx.pool, who, device_id, response)

    @r.patch("/devices/{device_id}", response_model=Device)
    async def update_device(device_id: UUID, body: DevicePatch, who: Who, response: Response,
                            if_match: IfMatch = None) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn, conn.transaction():
            current = await DEVICES.get(conn, who, device_id, lock=True)
            who.require("write")
            given = body.model_dump(exclude_unset=True)
            if given.get("name", "") is None or given.get("tags", {}) is None or given.get("metadata", {}) is None:
                raise ApiError(422, "name, tags and metadata cannot be null")
            merged = clean_device({**{k: current[k] for k in (*_EDITABLE, "kind")}, **given})
            await check_decoder(conn, merged.get("decoder"), str(current["organization_id"]))
            changes = {k: merged[k] for k in given if k in _EDITABLE}
            if given.get("app_key"):
                changes["app_key_enc"] = ctx.box.encrypt(merged["app_key"])
            row = await DEVICES.update(conn, who, current, changes, if_match, device_shown)
        with_etag(response, row["version"])
        return row

    @r.delete("/devices/{device_id}", status_code=204)
    async def delete_device(device_id: UUID, who: Who, request: Request, if_match: IfMatch = None,
                            erase_history: Annotated[bool | None, Query(description=ERASE_HELP)] = None) -> Response:
        async with ctx.pool.acquire() as conn, conn.transaction():
            before = await DEVICES.get(conn, who, device_id, lock=True)
            who.require("write")
            await DEVICES.delete(conn, who, before, if_match, device_shown)
            erase = await erasing(conn, erase_history, str(before["application_id"]))
            if erase:
                await erase_history_of(conn, who, "device", str(device_id), str(before["organization_id"]),
                                       [str(device_id)])
        await applied(request, [str(device_id)])
        if erase:
            await erase_late_arrivals(ctx.pool, [str(device_id)])
        return Response(status_code=204)

    @r.post("/devices/{device_id}/rotate-ingest-key", response_model=IngestKey,
            summary="Issue a new ingest key; the old one stops working at once")
    async def rotate_ingest_key(device_id: UUID, who: Who, request: Request) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn, conn.transaction():
            row = await DEVICES.get(conn, who, device_id, lock=True)
            who.require("write")
            if row["kind"] not in KEYED_KINDS:
                raise ApiError(422, f"a {row['kind']} device has no ingest key")
            key = new_token("iotd_ik")
            await conn.execute("UPDATE devices SET ingest_key_hash = $2, version = version + 1, updated_at = now()"
                               " WHERE id = $1", str(device_id), hash_token(key))
            await audited(conn, who, "rotate", "device", str(device_id), str(row["organization_id"]),
                          after={"ingest_key": "rotated"})
        await applied(request, [str(device_id)])
        return {"ingest_key": key}

    @r.get("/devices/{device_id}/latest", response_model=Latest, summary="The latest message and device state")
    async def latest(device_id: UUID, who: Who) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn:
            await DEVICES.get(conn, who, device_id)
            row = await conn.fetchrow("SELECT last_seen, last_f_cnt, last_message AS message, battery_level, margin,"
                                      " joined_at FROM device_state WHERE device_id = $1", str(device_id))
        return dict(row) if row else {"last_seen": None, "last_f_cnt": None, "message": None}

    @r.get("/devices/{device_id}/stats", response_model=DeviceStats, summary="Messages per day, best RSSI/SNR")
    async def stats(device_id: UUID, who: Who, days: int = Query(30, ge=1, le=366)) -> dict[str, Any]:
        async with ctx.pool.acquire() as conn:
            await DEVICES.get(conn, who, device_id)
            state = await conn.fetchrow("SELECT last_seen, message_count FROM device_state WHERE device_id = $1",
                                        str(device_id))
            rows = await conn.fetch("SELECT day, count, best_rssi, best_snr FROM device_daily_stats"
                                    " WHERE device_id = $1 AND day > current_date - $2::int ORDER BY day",
                                    str(device_id), days)
        per_day = [dict(x) for x in rows]
        rssi = [d["best_rssi"] for d in per_day if d["best_rssi"] is not None]
        snr = [d["best_snr"] for d in per_day if d["best_snr"] is not None]
        return {"last_seen": state["last_seen"] if state else None,
                "message_count": state["message_count"] if state else 0,
                "best_rssi": max(rssi) if rssi else None, "best_snr": max(snr) if snr else None, "days": per_day}

    return r
