"""Errors the API answers with: always JSON ``{"error": "..."}`` and a 4xx that says what to fix.

Database constraint violations are translated here, so a duplicate dev_eui is a 409 naming
the field, never a 500.
"""

from __future__ import annotations

import re

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from registry.store import RegistryError


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


def _unique_message(exc: asyncpg.UniqueViolationError) -> str:
    m = _KEY_DETAIL.search(getattr(exc, "detail", "") or "")
    if m and "hash" not in m.group("cols"):
        return f"{m.group('cols')} {m.group('vals')} already exists"
    return "an object with these unique values already exists"


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

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RegistryError, registry_error)
    app.add_exception_handler(asyncpg.UniqueViolationError, unique)
    app.add_exception_handler(asyncpg.CheckViolationError, constraint)
    app.add_exception_handler(asyncpg.ForeignKeyViolationError, constraint)
    app.add_exception_handler(asyncpg.NotNullViolationError, constraint)
    app.add_exception_handler(asyncpg.DataError, bad_value)
    app.add_exception_handler(asyncpg.exceptions._base.DataError, bad_value)  # refused before it reached the server
