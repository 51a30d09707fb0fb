"""Assembles the API: every resource router under ``/api/v1`` behind API-key authentication.

Text in a JSON body may not hold a NUL character (``\\u0000``): PostgreSQL cannot store it, and
rather than change what the caller sent, the API answers 422 naming the field (``refuse_nul``,
a dependency of every route; it reads the body FastAPI has already read and parsed).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from registry.api import (
    consumers,
    decoders,
    device_io,
    devices,
    history,
    integrations,
    keys,
    operations,
    organizations,
    replays,
)
from registry.api.context import ApiContext
from registry.api.errors import ApiError, error_response, install
from registry.api.json_body import json_problem, missing_body

PREFIX = "/api/v1"


def nul_path(value: Any, where: str = "") -> str | None:
    """Where the first NUL character is in a parsed JSON document (``"metadata.note"``), or None."""
    if isinstance(value, str):
        return where or "the body" if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{where}.{key}" if where else str(key)
            if "\x00" in key:
                return inner
            found = nul_path(item, inner)
            if found is not None:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = nul_path(item, f"{where}[{i}]")
            if found is not None:
                return found
    return None


async def refuse_nul(request: Request) -> None:
    """422 for a JSON body with a NUL character in any text (cheap: a byte search first)."""
    if request.method not in ("POST", "PUT", "PATCH") or "json" not in request.headers.get("content-type", ""):
        return
    body = await request.body()
    if b"\\u0000" not in body:
        return
    try:
        where = nul_path(orjson.loads(body))
    except orjson.JSONDecodeError:
        return                       # FastAPI answers that one itself
    if where is not None:
        raise ApiError(422, f"{where}: text may not contain a NUL (\\u0000) character")


def create_api_router(ctx: ApiContext) -> APIRouter:
    api = APIRouter(prefix=PREFIX, dependencies=[Depends(refuse_nul)],
                    responses={400: {"description": "the body cannot be parsed"},
                               401: {"description": "missing or invalid API key"},
                               403: {"description": "the key's role does not allow this"},
                               404: {"description": "not found (or another organization's)"},
                               409: {"description": "conflicts with an existing object"},
                               412: {"description": "If-Match does not match the current ETag"},
                               413: {"description": "the body is larger than this endpoint takes"},
                               422: {"description": "invalid input; `error` says what to fix"},
                               429: {"description": "too many wrong keys from this address; "
                                                    "wait Retry-After seconds"},
                               503: {"description": "the database is unavailable; try again"}})
    for module in (organizations, device_io, devices, history, consumers, replays, keys, operations, decoders,
                   integrations):
        api.include_router(module.routes(ctx))
    return api


def install_error_handlers(app: FastAPI) -> None:
    install(app)

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = []
        for err in exc.errors():
            if (unreadable := json_problem(err, exc.body)) is not None:
                return error_response(400, unreadable)
            if missing_body(err):
                problems.append("a JSON body is required")
                continue
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",))
            problems.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        resp = error_response(422, "; ".join(problems) or "invalid request")
        return resp

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return error_response(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
