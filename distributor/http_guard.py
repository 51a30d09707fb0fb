"""The door of the HTTP service: who is calling and how much they may send, decided before any body is read.

A pure ASGI middleware (no ``BaseHTTPMiddleware``, which buffers and wraps bodies), around the
whole FastAPI app. For every request, in this order:

1. **Throttle**: an address over its budget of wrong credentials gets 429 with ``Retry-After`` on
   every endpoint that takes a credential, without its credential being checked
   (``distributor.auth_throttle``).
2. **Credentials** from the headers (``distributor.ingress_auth``): a refusal is answered (401; 503
   when the database cannot be asked) and a wrong credential counted. What was found is left in
   the request's scope state for the endpoint: the API key's ``Principal`` (``registry.api.auth``
   ``PRINCIPAL``), the ingest key's device (``INGEST_DEVICE``), the ChirpStack caller
   (``CHIRPSTACK_CALLER``). So a caller without a valid credential learns nothing else, not even
   the limits.
3. **Declared size**: a ``Content-Length`` over the route's limit is refused with 413 at once.
4. **Streamed size**: the body is counted as the app reads it; past the limit the read raises a
   413 (``HTTPException``, which FastAPI passes through), so a chunked body is cut off at the limit
   and never held whole.

Limits per route (``route_for``): 256 KiB ``/ingest/http`` (``http_ingest.MAX_BODY``), 1 MiB
``/ingest/chirpstack``, 20 MiB CSV import (``device_csv.MAX_BYTES``), 2 MiB decoders (code and
examples), 1 MiB everything else.

An early answer (before the body was read) to a request whose body is huge (declared over
``DRAIN_AT_MOST``, 32 MiB) or of unknown length (chunked) carries ``Connection: close``: the server
stops reading at once. A smaller body is read and thrown away after the answer (uvicorn's
keep-alive path discards it, nothing is kept), because most clients (httpx, hyper, requests) send
the whole body before they read the answer: closing on them with unread data makes the kernel
reset the connection, and they would see "connection reset" instead of the 401 or 413 that says
what to fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from distributor.auth_throttle import AuthThrottle
from distributor.ingress_auth import Credentials, Refusal
from distributor.sources.http_ingest import MAX_BODY
from registry.api.auth import PRINCIPAL
from registry.api.errors import DB_UNAVAILABLE, RETRY_AFTER_S, UNAVAILABLE
from registry.device_csv import MAX_BYTES as CSV_MAX_BYTES

INGEST_DEVICE = "iotd_ingest_device"
CHIRPSTACK_CALLER = "iotd_chirpstack_caller"
API_PREFIX = "/api/v1"
MiB = 1024 * 1024
DEFAULT_LIMIT = 1 * MiB
CHIRPSTACK_LIMIT = 1 * MiB
DECODER_LIMIT = 2 * MiB
DRAIN_AT_MOST = 32 * MiB      # a declared body up to this is drained after an early answer; more (or chunked): close


@dataclass(frozen=True, slots=True)
class Route:
    credential: str | None      # api, ingest, chirpstack, metrics; None: open
    limit: int                  # bytes of body


def route_for(path: str, api: bool, metrics_protected: bool) -> Route:
    """Which credential and how much body a path takes (the app's own paths; anything else is open, 1 MiB)."""
    if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
        rest = path[len(API_PREFIX):]
        limit = CSV_MAX_BYTES if rest == "/devices/import" else DECODER_LIMIT if rest.startswith(
            "/decoders") else DEFAULT_LIMIT
        return Route("api" if api else None, limit)
    if path == "/ingest/http":
        return Route("ingest", MAX_BODY)
    if path == "/ingest/chirpstack":
        return Route("chirpstack", CHIRPSTACK_LIMIT)
    if path == "/metrics" and metrics_protected:
        return Route("metrics", DEFAULT_LIMIT)
    return Route(None, DEFAULT_LIMIT)


def too_large(limit: int) -> str:
    size = f"{limit // MiB} MiB" if limit % MiB == 0 else f"{limit // 1024} KiB"
    return f"the body is larger than this endpoint takes ({size}); send less"


_READ = frozenset({b"authorization", b"x-api-key", b"content-length", b"transfer-encoding"})


def read_headers(scope: Scope) -> dict[str, str]:
    """The few headers the guard looks at, in one pass (ASGI servers give names in lower case)."""
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name in _READ and name.decode() not in found:
            found[name.decode()] = value.decode("latin-1")
    return found


def declared_length(headers: Mapping[str, str]) -> int | None:
    value = headers.get("content-length")
    return int(value) if value is not None and value.isascii() and value.isdigit() else None


def _closes(headers: Mapping[str, str]) -> bool:
    """Whether an early answer should close the connection (a large or unknown-length body is coming)."""
    length = declared_length(headers)
    if length is None:
        return "transfer-encoding" in headers
    return length > DRAIN_AT_MOST


async def answer(send: Send, status: int, message: str, headers: tuple[tuple[str, str], ...] = (),
                 close: bool = False) -> None:
    body = orjson.dumps({"error": message})
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers]
    if close:
        raw.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class HttpGuard:
    def __init__(self, app: ASGIApp, credentials: Credentials, throttle: AuthThrottle, api: bool) -> None:
        self.app = app
        self._credentials = credentials
        self._throttle = throttle
        self._api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = route_for(scope["path"], self._api, self._credentials.metrics_protected)
        headers = read_headers(scope)
        close = _closes(headers)
        address = scope["client"][0] if scope.get("client") else "unknown"
        if route.credential is not None and (wait := self._throttle.retry_after(address)) is not None:
            await answer(send, 429, f"too many wrong credentials from this address; try again in {wait} s",
                         (("Retry-After", str(wait)),), close)
            return
        if route.credential is not None:
            try:
                refused = await self._authenticate(route.credential, headers, scope)
            except UNAVAILABLE:
                await answer(send, 503, DB_UNAVAILABLE, (("Retry-After", str(RETRY_AFTER_S)),), close)
                return
            if refused is not None:
                if refused.presented is not None:
                    self._throttle.failed(address, refused.kind, refused.presented)
                await answer(send, refused.status, refused.message, refused.headers, close)
                return
        length = declared_length(headers)
        if length is not None and length > route.limit:
            await answer(send, 413, too_large(route.limit), close=close)
            return
        await self._limited(route.limit, scope, receive, send)

    async def _authenticate(self, credential: str, headers: Mapping[str, str], scope: Scope) -> Refusal | None:
        """Check the route's credential; what it finds is left in the scope state for the endpoint."""
        c = self._credentials
        found: object
        if credential == "api":
            found, name = await c.api(headers), PRINCIPAL
        elif credential == "ingest":
            found, name = c.ingest(headers, scope.get("query_string", b"")), INGEST_DEVICE
        elif credential == "chirpstack":
            found, name = c.chirpstack(headers), CHIRPSTACK_CALLER
        else:
            found, name = c.metrics(headers), ""
        if isinstance(found, Refusal):
            return found
        if name:
            scope.setdefault("state", {})[name] = found
        return None

    async def _limited(self, limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app with a body that may not pass ``limit`` bytes while it streams in."""
        received = 0
        over = False
        started = False

        async def counted() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    raise HTTPException(413, too_large(limit), headers={"Connection": "close"})
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except HTTPException:
            if not (over and not started):
                raise
        if over and not started:   # the app swallowed the refusal: answer it here
            await answer(send, 413, too_large(limit), close=True)
