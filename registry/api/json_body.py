"""JSON request bodies whatever the declared Content-Type, and readable answers for bodies that are not JSON.

Every ``/api/v1`` body is a JSON document (the CSV import reads its own body and is not affected), so
the API reads it as JSON whether the request says ``application/json``, nothing, or what ``curl -d``
sends by default (``application/x-www-form-urlencoded``): answering 422 "Input should be a valid
dictionary" to a correct JSON document helped nobody. This is safe against cross-site request forgery,
which is what FastAPI's strict content-type check guards against: every API request needs an
``Authorization`` header, which a browser never adds to a cross-site request by itself.

A body that is not JSON answers 400 ``the body is not valid JSON: <reason> at line L, column C`` (or
``...: it is not UTF-8 text``);
a route that needs a body and got none answers 422 ``a JSON body is required``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import Request, Response, params
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from registry.api.errors import ApiError

JSON = b"application/json"
FASTAPI_UNREADABLE = "There was an error parsing the body"
NOT_TEXT = "the body is not valid JSON: it is not UTF-8 text"


def declares_json(content_type: bytes) -> bool:
    """``application/json`` or a ``+json`` type (``application/merge-patch+json``), parameters aside."""
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == JSON or (media.startswith(b"application/") and media.endswith(b"+json"))


def as_json(headers: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The request headers with the Content-Type replaced by ``application/json`` unless it already is JSON."""
    kept = [(name, value) for name, value in headers if name.lower() != b"content-type"]
    declared = [value for name, value in headers if name.lower() == b"content-type"]
    if len(declared) == 1 and declares_json(declared[0]):
        return list(headers)
    return [*kept, (b"content-type", JSON)]


class JsonBodyRoute(APIRoute):
    """An API route whose JSON body is read as JSON whatever the declared Content-Type."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None or isinstance(self.body_field.field_info, params.Form):
            return handler

        async def read_as_json(request: Request) -> Response:
            # In place: FastAPI keeps per-request state in the scope, so the handler must see this scope.
            request.scope["headers"] = as_json(request.scope["headers"])
            try:
                return await handler(Request(request.scope, request.receive))
            except HTTPException as exc:   # FastAPI's answer to a body that is not even text (invalid UTF-8)
                if exc.status_code == 400 and exc.detail == FASTAPI_UNREADABLE:
                    raise ApiError(400, NOT_TEXT) from exc
                raise

        return read_as_json


def position(document: str | bytes, pos: int) -> tuple[int, int]:
    """Line and column (both from 1) of character ``pos`` in ``document``."""
    text = document.decode("utf-8", "replace") if isinstance(document, bytes) else document
    before = text[:pos]
    line = before.count("\n") + 1
    return line, pos - (before.rfind("\n") + 1) + 1


def json_problem(error: dict[str, Any], document: Any) -> str | None:
    """The 400 text for FastAPI's ``json_invalid`` validation error, or None for any other error."""
    if error.get("type") != "json_invalid":
        return None
    loc = error.get("loc", ())
    pos = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
    reason = str((error.get("ctx") or {}).get("error") or "JSON decode error")
    where = ""
    if pos is not None and isinstance(document, str | bytes):
        line, column = position(document, pos)
        where = f" at line {line}, column {column}"
    return f"the body is not valid JSON: {reason}{where}"


def missing_body(error: dict[str, Any]) -> bool:
    """FastAPI's error for a route that needs a body and got none."""
    return error.get("type") == "missing" and tuple(error.get("loc", ())) == ("body",)
