"""Assembles the API: every resource router under ``/api/v1`` behind API-key authentication."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from registry.api import consumers, decoders, device_io, devices, keys, operations, organizations
from registry.api.context import ApiContext
from registry.api.errors import error_response, install

PREFIX = "/api/v1"


def create_api_router(ctx: ApiContext) -> APIRouter:
    api = APIRouter(prefix=PREFIX, responses={400: {"description": "the body cannot be parsed"},
                                              401: {"description": "missing or invalid API key"},
                                              403: {"description": "the key's role does not allow this"},
                                              404: {"description": "not found (or another organization's)"},
                                              409: {"description": "conflicts with an existing object"},
                                              412: {"description": "If-Match does not match the current ETag"},
                                              422: {"description": "invalid input; `error` says what to fix"}})
    for module in (organizations, device_io, devices, consumers, keys, operations, decoders):
        api.include_router(module.routes(ctx))
    return api


def install_error_handlers(app: FastAPI) -> None:
    install(app)

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",))
            problems.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        resp = error_response(422, "; ".join(problems) or "invalid request")
        return resp

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return error_response(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
