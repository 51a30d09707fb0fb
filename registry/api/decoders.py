"""Decoders: the built-in library (read-only) and an organization's own JavaScript decoders.

A JavaScript decoder is compiled and its examples run before it is saved; a test endpoint
decodes a payload with a saved decoder or with code not saved yet. Running code is a trial, and
every trial follows the same order: authorize (a ``write`` key of the owning organization; ``read``
keys never run code), validate (at most 100 examples), spend a token of the organization's bucket
(shared by every instance, ``registry.js_store.take_trial``: 429 with Retry-After when empty), then
run in the API's own trial worker process under a 10 s hard deadline (``TrialRunner``: 503 with
Retry-After when it is busy), never in this process and never on the distributor's workers.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import asyncpg
import orjson
from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from decoders import catalog
from decoders.payload_text import from_hex
from registry.api.auth import IfMatch, Principal, Who
from registry.api.common import Page, Paging, audited, check_if_match, with_etag
from registry.api.context import ApiContext
from registry.api.errors import ApiError, not_found
from registry.api.json_body import JsonBodyRoute
from registry.api.organizations import require_organization
from registry.decoder_preview import diff, summary
from registry.js_store import (
    MAX_EXAMPLES,
    Checked,
    TrialBusy,
    TrialRunner,
    check_id,
    examples_from,
    take_trial,
    upsert,
)
from registry.store import RegistryError

Dialect = Literal["ttn", "chirpstack-v4", "chirpstack-v3", "os2iot"]
_JS_LIST_COLUMNS = "id, organization_id, vendor, model, description, dialect, version"  # what a list shows
_JS_COLUMNS = f"{_JS_LIST_COLUMNS}, source, examples, timeout_ms, origin, created_at, updated_at"


class DecoderInfo(BaseModel):
    id: str
    kind: Literal["builtin", "javascript"]
    vendor: str
    model: str
    description: str
    protocols: list[str] = Field(default_factory=list)
    measurements: list[str] = Field(default_factory=list)
    organization_id: UUID | None = Field(None, description="javascript: the owner; null when shared with all")
    dialect: str | None = None
    version: int | str


class DecoderDetail(DecoderInfo):
    source: str | None = None
    examples: list[dict[str, Any]] = Field(default_factory=list)
    timeout_ms: int | None = None
    origin: str | None = None


class JsDecoderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=80, description="lower-case letters, digits and dashes; unique")
    organization_id: UUID | None = Field(None, description="the owner; omit (global admin) to share with all")
    vendor: str = Field("", max_length=200)
    model: str = Field("", max_length=200)
    description: str = Field("", max_length=2000)
    source: str = Field(min_length=1, max_length=1_000_000, description="the JavaScript codec")
    dialect: Dialect | None = Field(None, description="detected from the functions it defines when omitted")
    examples: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_EXAMPLES,
                                           description="TTN style: {description, input: {fPort, bytes}, output}")
    timeout_ms: int = Field(100, ge=1, le=5000, description="wall-time budget per call")


class JsDecoderPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vendor: str | None = Field(None, max_length=200)
    model: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=2000)
    source: str | None = Field(None, min_length=1, max_length=1_000_000)
    dialect: Dialect | None = None
    examples: list[dict[str, Any]] | None = Field(None, max_length=MAX_EXAMPLES)
    timeout_ms: int | None = Field(None, ge=1, le=5000)


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    payload_hex: str | None = Field(None, max_length=100_000)
    payload_base64: str | None = Field(None, max_length=140_000)
    fport: int | None = Field(None, ge=0, le=255)
    variables: dict[str, str] = Field(default_factory=dict, description="ChirpStack device variables")


class AdHocTest(Payload):
    source: str = Field(min_length=1, max_length=1_000_000)
    dialect: Dialect | None = None
    timeout_ms: int = Field(100, ge=1, le=5000)


class TestResult(BaseModel):
    data: dict[str, Any]
    measurements: list[dict[str, Any]]
    warnings: list[str]
    errors: list[str]


MAX_PREVIEW = 200


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str | None = Field(None, min_length=1, max_length=1_000_000,
                               description="candidate JavaScript; default: the decoder's saved source")
    dialect: Dialect | None = None
    timeout_ms: int = Field(100, ge=1, le=5000, description="per uplink, for `source`")
    builtin: str | None = Field(None, max_length=80, description="a built-in decoder as the candidate instead")
    device_id: UUID | None = Field(None, description="only this device's messages")
    application_id: UUID | None = Field(None, description="only this application's messages")
    limit: int = Field(50, ge=1, le=MAX_PREVIEW, description="the last N stored uplinks")
    days: int = Field(7, ge=1, le=3650, description="looking back this many days")


class PreviewMessage(BaseModel):
    id: UUID
    received_at: datetime
    device_id: UUID
    current: dict[str, Any] = Field(description="as delivered: decoded, measurements, errors")
    candidate: TestResult
    diff: dict[str, Any] = Field(description="fields added, removed, changed; error fixed or introduced")


class PreviewResult(BaseModel):
    candidate: str = Field(description="what was run: the saved source, the given source or a built-in")
    summary: dict[str, Any]
    messages: list[PreviewMessage]


PREVIEW_ROWS = """
SELECT m.id, m.received_at, m.device_id, m.payload, m.f_port, m.body FROM messages m
JOIN devices d ON d.id = m.device_id
WHERE d.decoder = $1 AND m.received_at >= now() - make_interval(days => $2)
  AND ($3::uuid IS NULL OR m.organization_id = $3) AND ($4::uuid IS NULL OR m.device_id = $4)
  AND ($5::uuid IS NULL OR m.application_id = $5)
ORDER BY m.received_at DESC LIMIT $6
"""


def delivered_view(body: bytes) -> dict[str, Any]:
    """What a stored message says its decoder produced."""
    message = orjson.loads(body)
    payload, decoder = message.get("payload") or {}, message.get("decoder") or {}
    return {"decoded": payload.get("decoded"), "measurements": message.get("measurements") or [],
            "errors": decoder.get("errors") or []}


def trial_bucket(who: Principal) -> str:
    """Trials are counted per organization (minting keys does not help); a global key has its own bucket."""
    return f"org:{who.organization_id}" if who.organization_id is not None else f"key:{who.key_id}"


async def spend_trial(conn: asyncpg.Connection, who: Principal) -> None:
    """429 with Retry-After when the caller's organization has no trial left."""
    wait = await take_trial(conn, trial_bucket(who))
    if wait is not None:
        raise ApiError(429, f"too many decoder trials for this organization; try again in {max(1, round(wait))} s",
                       headers={"Retry-After": str(max(1, round(wait)))})


def busy() -> ApiError:
    return ApiError(503, "the decoder trial worker is busy; try again in a few seconds", headers={"Retry-After": "5"})


def _builtin(d: catalog.Decoder) -> dict[str, Any]:
    return {"id": d.id, "kind": "builtin", "vendor": d.device.vendor, "model": d.device.model,
            "description": d.device.description, "protocols": list(d.device.protocols),
            "measurements": list(d.measurements), "version": d.device.version}


def _js(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "kind": "javascript", "protocols": ["lorawan", "nbiot", "http", "mqtt"]}


def _payload(body: Payload) -> bytes:
    if body.payload_hex is not None:
        try:
            return from_hex(body.payload_hex)
        except ValueError as exc:
            raise ApiError(422, f"payload_hex: {exc}") from None
    try:
        if body.payload_base64 is not None:
            return base64.b64decode(body.payload_base64, validate=True)
    except (ValueError, binascii.Error):
        raise ApiError(422, "payload_base64 must be base64") from None
    raise ApiError(422, "give payload_hex or payload_base64")


async def decoder_usable(conn: asyncpg.Connection, decoder_id: str, organization_id: str) -> bool:
    """A built-in, or a JavaScript decoder of the organization or shared with all."""
    if catalog.get(decoder_id) is not None:
        return True
    return bool(await conn.fetchval(
        "SELECT true FROM js_decoders WHERE id = $1 AND (organization_id IS NULL OR organization_id = $2::uuid)",
        decoder_id, organization_id))


async def decoder_checker(conn: asyncpg.Connection) -> Callable[[str, str], bool]:
    """``usable(decoder_id, organization_id)`` from one query, for checking many devices at once."""
    owners = {r["id"]: r["organization_id"] for r in await conn.fetch("SELECT id, organization_id FROM js_decoders")}

    def usable(decoder_id: str, organization_id: str) -> bool:
        if catalog.get(decoder_id) is not None:
            return True
        if decoder_id not in owners:
            return False
        owner = owners[decoder_id]
        return owner is None or str(owner) == organization_id

    return usable


async def _get_js(conn: asyncpg.Connection, who: Principal, decoder_id: str, lock: bool = False) -> dict[str, Any]:
    row = await conn.fetchrow(f"SELECT {_JS_COLUMNS} FROM js_decoders WHERE id = $1{' FOR UPDATE' if lock else ''}",
                              decoder_id)
    if row is None or (row["organization_id"] is not None and not who.sees(row["organization_id"])):
        raise not_found("decoder")
    return dict(row)


def _may_change(who: Principal, row: dict[str, Any]) -> None:
    if row["organization_id"] is None and not who.is_global_admin:
        raise ApiError(403, "a shared decoder is changed by a global admin only")
    who.require("write")


def routes(ctx: ApiContext) -> APIRouter:
    r = APIRouter(route_class=JsonBodyRoute, tags=["decoders"])
    trials = TrialRunner()

    async def check(who: Principal, source: str, dialect: str | None, timeout_ms: int,
                    examples: list[dict[str, Any]]) -> Checked:
        """A trial of code the caller may change: rate-limited, then run in the trial worker."""
        if trials.full:
            raise busy()  # before a token is spent
        async with ctx.pool.acquire() as conn:
            await spend_trial(conn, who)
        try:
            checked = await trials.check(source, dialect, timeout_ms, examples)
        except TrialBusy:
            raise busy() from None
        if checked.failures:
            raise ApiError(422, "examples fail: " + "; ".join(checked.failures[:10]))
        return checked

    async def try_once(who: Principal, source: str, dialect: str | None, timeout_ms: int, body: Payload
                       ) -> dict[str, Any]:
        payload = _payload(body)
        if trials.full:
            raise busy()
        async with ctx.pool.acquire() as conn:
            await spend_trial(conn, who)
        try:
            return await trials.try_codec(source, dialect, timeout_ms, payload, body.fport, body.variables)
        except TrialBusy:
            raise busy() from None

    @r.get("/decoders", response_model=Page[DecoderInfo], summary="Decoders your devices can use")
    async def list_decoders(who: Who, paging: Annotated[Paging, Depends()],
                            q: str | None = Query(None, max_length=100),
                            kind: Literal["builtin", "javascript"] | None = None) -> dict[str, Any]:
        found: list[dict[str, Any]] = []
        if kind in (None, "builtin"):
            found += [_builtin(d) for d in catalog.load_all().values()]
        if kind in (None, "javascript"):
            async with ctx.pool.acquire() as conn:
                rows = await conn.fetch(f"SELECT {_JS_LIST_COLUMNS} FROM js_decoders WHERE organization_id IS NULL"
                                        " OR $1::uuid IS NULL OR organization_id = $1::uuid ORDER BY id",
                                        who.organization_id)
            found += [_js(dict(x)) for x in rows]
        if q:
            needle = q.lower()
            found = [d for d in found if needle in f"{d['id']} {d['vendor']} {d['model']}".lower()]
        items = found[paging.offset:paging.offset + paging.limit]
        return paging.result(items, len(found))

    @r.get("/decoders/{decoder_id}", response_model=DecoderDetail)
    async def get_decoder(decoder_id: str, who: Who, response: Response) -> dict[str, Any]:
        builtin = catalog.get(decoder_id)
        if builtin is not None:
            examples = [{"description": e.description, "fport": e.fport, "hex": e.payload_hex, "data": e.data,
                         "errors": list(e.errors)} for e in builtin.examples]
            return {**_builtin(builtin), "examples": examples}
        async with ctx.pool.acquire() as conn:
            row = await _get_js(conn, who, decoder_id)
        with_etag(response, row["version"])
        return _js(row)

    @r.post("/decoders", status_code=201, response_model=DecoderDetail,
            responses={429: {"description": "too many trials"}, 503: {"description": "trial worker busy"}},
            summary="Register a JavaScript decoder (compiled, and its examples run, before it is saved)")
    async def create_decoder(body: JsDecoderIn, who: Who, response: Response) -> dict[str, Any]:
        who.require("write")
        check_id(body.id)
        if body.organization_id is None and not who.is_global_admin:
            raise ApiError(422 if not who.is_global else 403,
                           "give organization_id; only a global admin shares a decoder with every organization")
        async with ctx.pool.acquire() as conn:
            if body.organization_id is not None:
                await require_organization(conn, who, body.organization_id)
            if await conn.fetchval("SELECT true FROM js_decoders WHERE id = $1", body.id):
                raise ApiError(409, "id is already registered; choose another")
        examples = examples_from(body.examples)
        checked = await check(who, body.source, body.dialect, body.timeout_ms, examples)
        async with ctx.pool.acquire() as conn, conn.transaction():
            if body.organization_id is not None:
                await require_organization(conn, who, body.organization_id)
            if await conn.fetchval("SELECT true FROM js_decoders WHERE id = $1", body.id):
                raise ApiError(409, "id is already registered; choose another")
            await upsert(conn, decoder_id=body.id, organization_id=str(body.organization_id) if body.organization_id
                         else None, source=body.source, dialect=checked.dialect, examples=body.examples,
                         timeout_ms=body.timeout_ms, vendor=body.vendor, model=body.model,
                         description=body.description)
            row = await _get_js(conn, who, body.id)
            await audited(conn, who, "create", "decoder", body.id, _org(row), after=_audit_view(row))
        with_etag(response, row["version"])
        return _js(row)

    @r.patch("/decoders/{decoder_id}", response_model=DecoderDetail,
             responses={429: {"description": "too many trials"}, 503: {"description": "trial worker busy"}})
    async def update_decoder(decoder_id: str, body: JsDecoderPatch, who: Who, response: Response,
                             if_match: IfMatch = None) -> dict[str, Any]:
        if catalog.get(decoder_id) is not None:
            raise ApiError(403, "built-in decoders cannot be changed")
        async with ctx.pool.acquire() as conn:
            row = await _get_js(conn, who, decoder_id)
        _may_change(who, row)
        check_if_match(if_match, row["version"])
        given = body.model_dump(exclude_unset=True)
        if any(v is None for v in given.values()):
            raise ApiError(422, "fields cannot be null; leave them out to keep them")
        merged = {**row, **given}
        dialect = row["dialect"]
        if any(given.get(k, row[k]) != row[k] for k in ("source", "dialect", "examples", "timeout_ms")):
            examples = examples_from(merged["examples"])
            dialect = (await check(who, merged["source"], given.get("dialect"), merged["timeout_ms"],
                                   examples)).dialect
        async with ctx.pool.acquire() as conn, conn.transaction():
            current = await _get_js(conn, who, decoder_id, lock=True)
            if current["version"] != row["version"]:
                raise ApiError(412, "the decoder changed while this change was being checked; fetch it and try again")
            await conn.execute(
                "UPDATE js_decoders SET vendor = $2, model = $3, description = $4, dialect = $5, source = $6,"
                " examples = $7, timeout_ms = $8, version = version + 1, updated_at = now() WHERE id = $1",
                decoder_id, merged["vendor"], merged["model"], merged["description"], dialect,
                merged["source"], merged["examples"], merged["timeout_ms"])
            after = await _get_js(conn, who, decoder_id)
            await audited(conn, who, "update", "decoder", decoder_id, _org(row), _audit_view(row), _audit_view(after))
        with_etag(response, after["version"])
        return _js(after)

    @r.delete("/decoders/{decoder_id}", status_code=204, responses={409: {"description": "devices use it"}})
    async def delete_decoder(decoder_id: str, who: Who, if_match: IfMatch = None) -> Response:
        if catalog.get(decoder_id) is not None:
            raise ApiError(403, "built-in decoders cannot be deleted")
        async with ctx.pool.acquire() as conn, conn.transaction():
            row = await _get_js(conn, who, decoder_id, lock=True)
            _may_change(who, row)
            check_if_match(if_match, row["version"])
            used = await conn.fetchval("SELECT count(*) FROM devices WHERE decoder = $1", decoder_id)
            if used:
                raise ApiError(409, f"{used} device(s) use this decoder; give them another decoder first")
            await conn.execute("DELETE FROM js_decoders WHERE id = $1", decoder_id)
            await audited(conn, who, "delete", "decoder", decoder_id, _org(row), before=_audit_view(row))
        return Response(status_code=204)

    @r.post("/decoders/{decoder_id}/test", response_model=TestResult,
            responses={429: {"description": "slow down"}, 503: {"description": "trial worker busy"}},
            summary="Decode a payload with this decoder (write keys; rate-limited per organization)")
    async def test_decoder(decoder_id: str, body: Payload, who: Who) -> dict[str, Any]:
        who.require("write")
        builtin = catalog.get(decoder_id)
        if builtin is not None:
            result = builtin.decode(_payload(body), body.fport)
            measurements = builtin.measure(result)
            return {"data": result.data, "measurements": [m.as_dict() for m in measurements],
                    "warnings": result.warnings, "errors": result.errors}
        async with ctx.pool.acquire() as conn:
            row = await _get_js(conn, who, decoder_id)
        return await try_once(who, row["source"], row["dialect"], row["timeout_ms"], body)

    @r.post("/decoders/{decoder_id}/preview", response_model=PreviewResult,
            responses={429: {"description": "slow down"}, 503: {"description": "trial worker busy"}},
            summary="Run a candidate decoder over the last stored uplinks of this decoder's devices and compare"
                    " (write keys; one trial)")
    async def preview_decoder(decoder_id: str, body: PreviewIn, who: Who) -> dict[str, Any]:
        who.require("write")
        if body.source is not None and body.builtin is not None:
            raise ApiError(422, "give a candidate as source or as builtin, not both")
        async with ctx.pool.acquire() as conn:
            saved = None if catalog.get(decoder_id) is not None else await _get_js(conn, who, decoder_id)
            for table, wanted in (("devices", body.device_id), ("applications", body.application_id)):
                if wanted is not None:
                    org = await conn.fetchval(
                        "SELECT a.organization_id FROM applications a WHERE a.id = $1" if table == "applications"
                        else "SELECT a.organization_id FROM devices d JOIN applications a ON a.id = d.application_id"
                             " WHERE d.id = $1", str(wanted))
                    if org is None or not who.sees(org):
                        raise not_found(table[:-1])
            rows = await conn.fetch(PREVIEW_ROWS, decoder_id, body.days, who.organization_id,
                                    body.device_id, body.application_id, body.limit)
        uplinks = [(bytes(r["payload"]), r["f_port"]) for r in rows]
        if body.builtin is not None:
            candidate = catalog.get(body.builtin)
            if candidate is None:
                raise ApiError(422, f"builtin: no built-in decoder {body.builtin!r}")
            label = f"built-in {body.builtin}"
            results: list[dict[str, Any]] = []
            for payload, fport in uplinks:   # trusted Python, in line, as the service runs it
                result = candidate.decode(payload, fport)
                results.append({"data": result.data, "measurements": [m.as_dict() for m in candidate.measure(result)],
                                "warnings": result.warnings, "errors": result.errors})
        else:
            if body.source is None and saved is None:
                raise ApiError(422, "a built-in decoder has no saved source: give a candidate as source or builtin")
            source = body.source if body.source is not None else str(saved["source"])   # type: ignore[index]
            dialect = body.dialect if body.source is not None else saved["dialect"]   # type: ignore[index]
            timeout_ms = body.timeout_ms if body.source is not None else int(saved["timeout_ms"])  # type: ignore[index]
            label = "the given source" if body.source is not None else f"the saved {decoder_id}"
            results = await preview_trial(who, source, dialect, timeout_ms, uplinks) if uplinks else []
        messages = []
        for row, answer in zip(rows, results, strict=True):
            current = delivered_view(row["body"])
            messages.append({"id": row["id"], "received_at": row["received_at"], "device_id": row["device_id"],
                             "current": current, "candidate": answer,
                             "diff": diff(current["decoded"], answer["data"], list(current["errors"]),
                                          list(answer["errors"]))})
        return {"candidate": label, "summary": summary(m["diff"] for m in messages), "messages": messages}

    async def preview_trial(who: Principal, source: str, dialect: str | None, timeout_ms: int,
                            uplinks: list[tuple[bytes, int | None]]) -> list[dict[str, Any]]:
        if trials.full:
            raise busy()
        async with ctx.pool.acquire() as conn:
            await spend_trial(conn, who)
        try:
            return await trials.preview(source, dialect, timeout_ms, uplinks)
        except TrialBusy:
            raise busy() from None
        except RegistryError as exc:
            raise ApiError(422, str(exc)) from None

    @r.post("/decoders/test", response_model=TestResult,
            responses={429: {"description": "slow down"}, 503: {"description": "trial worker busy"}},
            summary="Try JavaScript code on a payload without saving it (write keys; rate-limited per organization)")
    async def test_source(body: AdHocTest, who: Who) -> dict[str, Any]:
        who.require("write")
        return await try_once(who, body.source, body.dialect, body.timeout_ms, body)

    return r


def _org(row: dict[str, Any]) -> str | None:
    return str(row["organization_id"]) if row["organization_id"] is not None else None


def _audit_view(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "dialect": row["dialect"], "vendor": row["vendor"], "model": row["model"],
            "timeout_ms": row["timeout_ms"], "version": row["version"], "source_chars": len(row["source"])}
