"""Devices in and out as CSV: ``POST /devices/import`` (an idempotent upsert) and ``GET /devices/export``.

The columns, cell formats and upsert rules are in ``registry.device_csv`` and ``registry.device_import``.
An import is one transaction: all rows' results are stored, or (``dry_run``, or a failure) none.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from registry.api.auth import Who
from registry.api.common import Where
from registry.api.context import ApiContext
from registry.api.decoders import decoder_checker
from registry.api.devices import DEVICES, Kind, check_application
from registry.api.errors import ApiError
from registry.api.json_body import JsonBodyRoute
from registry.device_csv import COLUMNS, MAX_BYTES, MAX_ROWS, CsvFileError, export_rows, parse_rows
from registry.device_import import import_devices

_CSV_BODY = {"requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}, "example": (
    "name,kind,dev_eui,decoder,tags\nroom 1.12,lorawan,a81758fffe0312ab,elsys,floor=1;building=town hall\n")}}}}


class ImportRow(BaseModel):
    line: int = Field(description="the row's line in the file; the header is line 1")
    status: Literal["created", "updated", "unchanged", "error"]
    device_id: UUID | None
    reason: str | None = Field(description="why the row was refused (status error)")
    ingest_key: str | None = Field(None, description="shown once: a created nbiot/http/mqtt device's ingest key")


class ImportResult(BaseModel):
    created: int
    updated: int
    unchanged: int
    errors: int
    dry_run: bool = Field(description="true: nothing was stored; the rows say what an import would do")
    rows: list[ImportRow]


async def read_text(request: Request) -> str:
    """The request body as text: at most ``MAX_BYTES``, in the Content-Type's charset (default UTF-8)."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_BYTES:
        raise ApiError(422, f"the file is larger than {MAX_BYTES // 2**20} MB; split it")
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > MAX_BYTES:
            raise ApiError(422, f"the file is larger than {MAX_BYTES // 2**20} MB; split it")
    charset = "utf-8"
    for param in request.headers.get("content-type", "").split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.lower() == "charset" and value:
            charset = value.strip('"')
    try:
        return bytes(body).decode(charset)
    except LookupError:
        raise ApiError(422, f"unknown charset {charset!r}") from None
    except UnicodeDecodeError:
        raise ApiError(422, f"the file is not {charset} text: save it as \"CSV UTF-8\" or name its charset in"
                            " the Content-Type (text/csv; charset=windows-1252)") from None


def routes(ctx: ApiContext) -> APIRouter:
    r = APIRouter(route_class=JsonBodyRoute, tags=["devices"])

    @r.post("/devices/import", response_model=ImportResult, openapi_extra=_CSV_BODY,
            summary="Create and update devices from a CSV file (idempotent)",
            description=f"Columns: {', '.join(COLUMNS)}; a header row is required, `name` and `kind` too. "
                        f"Rows find their device by dev_eui (lorawan), imei, or else by application, kind and "
                        f"name. Columns left out and an empty app_key keep the stored values. At most "
                        f"{MAX_ROWS} rows and {MAX_BYTES // 2**20} MB; one transaction per request.")
    async def import_csv(request: Request, who: Who,
                         application_id: Annotated[UUID | None, Query(description="for rows without one")] = None,
                         dry_run: Annotated[bool, Query(description="validate and report, store nothing")] = False,
                         ) -> dict[str, Any]:
        who.require("write")
        try:
            rows = await asyncio.to_thread(parse_rows, await read_text(request))   # ~1.4 s for 50,000 rows
        except CsvFileError as exc:
            raise ApiError(422, str(exc)) from None
        default = str(application_id) if application_id is not None else None
        async with ctx.pool.acquire() as conn:
            tr = conn.transaction()
            await tr.start()
            try:
                if default is not None:
                    await check_application(conn, who, default)
                report = await import_devices(conn, ctx.box, who, rows, default, await decoder_checker(conn))
            except BaseException:
                await tr.rollback()
                raise
            if dry_run:
                await tr.rollback()
                report = report.without_keys()
            else:
                await tr.commit()
        return {**report.as_dict(), "dry_run": dry_run}

    @r.get("/devices/export", response_class=Response, summary="The devices as a CSV file (never the app keys)",
           responses={200: {"content": {"text/csv": {}}, "description": "devices.csv"}})
    async def export_csv(who: Who, application_id: UUID | None = None, kind: Kind | None = None,
                         decoder: str | None = Query(None, max_length=200)) -> Response:
        w = Where()
        if application_id is not None:
            w = w.add("t.application_id = {}", str(application_id))
        if kind is not None:
            w = w.add("t.kind = {}", kind)
        if decoder is not None:
            w = w.add("t.decoder = {}", decoder)
        w = DEVICES.scoped(who, w)
        async with ctx.pool.acquire() as conn:
            rows = await conn.fetch(f"SELECT {DEVICES.columns} FROM devices t WHERE {w.sql()}"
                                    " ORDER BY t.application_id, t.name, t.id", *w.params)
        return Response(await asyncio.to_thread(export_rows, rows), media_type="text/csv",
                        headers={"Content-Disposition": "attachment; filename=devices.csv"})

    return r
