"""Errors the API answers with: always JSON ``{"error": "..."}`` and a 4xx that says what to fix.

Database constraint violations are translated here, so a duplicate dev_eui is a 409 naming
the field, never a 500. The 409 text names the field only, never the value, and reads the same
whether the duplicate is the caller's own or another organization's: globally unique identifiers
(dev_eui, IMEI, e-mail, organization names) are taken or not, and that is all the answer tells.

A database that cannot be reached (connection refused or lost, shut down, out of connections, a
timeout) answers JSON 503 ``{"error": "the database is unavailable; try again shortly"}`` with
``Retry-After`` on every endpoint, never a plain-text 500.
"""

from __future__ import annotations

import re

import asyncpg
import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.responses import Response

from registry.store import RegistryError

log = structlog.get_logger("iotd.api")


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def not_found(resource: str) -> ApiError:
    return ApiError(404, f"{resource} not found")


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps({"error": message}), status_code=status, media_type="application/json",
                    headers=headers)


_KEY_DETAIL = re.compile(r"Key \((?P<cols>[^)]*)\)=\((?P<vals>[^)]*)\)")


DB_UNAVAILABLE = "the database is unavailable; try again shortly"
RETRY_AFTER_S = 5
# What an outage looks like from asyncpg: no connection (refused, reset, lost: OSError and SQLSTATE
# class 08), the server shutting down or starting (57P0x), out of connections (53300), or waiting
# too long for a connection (TimeoutError).
UNAVAILABLE: tuple[type[Exception], ...] = (
    OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError)


def _unique_message(exc: asyncpg.UniqueViolationError) -> str:
    """One text per field ("dev_eui is already registered"): no value, nothing about whose it is."""
    m = _KEY_DETAIL.search(getattr(exc, "detail", "") or "")
    if not m or "hash" in m.group("cols"):
        return "an object with these unique values already exists"
    columns = [c.strip() for c in m.group("cols").split(",")]
    named = ", ".join(c for c in columns if c != "organization_id") or "organization_id"
    return f"{named} is already registered{' in this organization' if 'organization_id' in columns else ''}"


def unavailable_response() -> Response:
    return error_response(503, DB_UNAVAILABLE, {"Retry-After": str(RETRY_AFTER_S)})


def install(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.message, exc.headers)

    async def registry_error(request: Request, exc: Exception) -> Response:
        return error_response(422, str(exc))

    async def unique(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, asyncpg.UniqueViolationError)
        return error_response(409, _unique_message(exc))

    async def constraint(request: Request, exc: Exception) -> Response:
        name = getattr(exc, "constraint_name", None) or "a constraint"
        return error_response(422, f"the values break {name}")

    async def bad_value(request: Request, exc: Exception) -> Response:
        return error_response(422, f"invalid value: {exc}")

    async def unavailable(request: Request, exc: Exception) -> Response:
        log.warning("database unavailable", path=request.url.path, error=type(exc).__name__)
        return unavailable_response()

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RegistryError, registry_error)
    app.add_exception_handler(asyncpg.UniqueViolationError, unique)
    app.add_exception_handler(asyncpg.CheckViolationError, constraint)
    app.add_exception_handler(asyncpg.ForeignKeyViolationError, constraint)
    app.add_exception_handler(asyncpg.NotNullViolationError, constraint)
    app.add_exception_handler(asyncpg.DataError, bad_value)
    app.add_exception_handler(asyncpg.exceptions._base.DataError, bad_value)  # refused before it reached the server
    for kind in UNAVAILABLE:
        app.add_exception_handler(kind, unavailable)
