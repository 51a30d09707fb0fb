"""The HTTP face of the service: health, readiness, metrics and ingest endpoints (FastAPI).

Ingest answers 2xx only once the message is done (delivered or durably spilled), so a
sender that gets an error or no answer can safely send again: message ids are deterministic.

Every request passes ``distributor.http_guard`` first: credentials are checked from the headers and
body limits enforced before any body is read; the endpoints find the authenticated caller in the
request's state. ChirpStack's HTTP integration sends ``?event=`` (one of ``CHIRPSTACK_EVENTS``) and
``Authorization: Bearer <token>``; a token bound to a ChirpStack tenant is refused (403) for another
tenant's events.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import orjson
import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from distributor.ack import Finalizer, finalizer_for
from distributor.auth_throttle import AuthThrottle
from distributor.envelope import message_id
from distributor.http_guard import CHIRPSTACK_CALLER, INGEST_DEVICE, HttpGuard
from distributor.ingress_auth import MISSING_INGEST_KEY, ChirpStackCaller, Credentials
from distributor.ingress_metrics import IngressMetrics
from distributor.sources.chirpstack import message_key, submit
from distributor.sources.chirpstack_event import EventParseError
from distributor.sources.chirpstack_parse import parse
from distributor.sources.http_ingest import IngestError, parse_body
from distributor.uplink import RawUplink
from registry.api import create_api_router, install_error_handlers
from registry.api.docs import DESCRIPTION, install_docs
from registry.api.freshness import STATE_NAME
from registry.console import create_console_router
from registry.records import Device

if TYPE_CHECKING:
    from distributor.pipeline import Pipeline
    from distributor.service import Service

CHIRPSTACK_HTTP = "chirpstack-http"
MAX_IDEMPOTENCY_KEY = 200
HTTP_SOURCE = "http"
CHIRPSTACK_EVENTS = ("up", "join", "status", "log", "ack", "txack", "location", "integration")


def create_app(service: Service) -> FastAPI:
    # Backpressure for HTTP intake: past this many unfinished ingest requests, new ones wait (the
    # sender sees a slower answer), so memory stays bounded and nothing is refused or dropped.
    slots = asyncio.Semaphore(service.settings.http_max_in_flight)
    app = FastAPI(title="iotd", version="0.1.0", description=DESCRIPTION, docs_url=None, redoc_url=None)
    install_docs(app)   # /docs from an installed package, no CDN; the OpenAPI document's security schemes
    install_error_handlers(app)
    setattr(app.state, STATE_NAME, service.cache)
    if service.api_context is not None:
        app.state.api_context = service.api_context
        app.include_router(create_api_router(service.api_context))
        app.include_router(create_console_router(service.api_context))   # the web console at / (not in OpenAPI)
    install_guard(app, service)

    @app.get("/healthz", tags=["operations"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], summary="Database and broker reachable")
    async def readyz() -> Response:
        checks = await service.readiness()
        ready = all(c["ok"] for c in checks.values())
        return json_response({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    def intake_unavailable() -> Response | None:
        if service.pipeline is None:
            return json_response({"error": "this instance runs only the API; send data to a distributor"}, 503)
        return None

    async def until_done(start: Callable[[Pipeline, Finalizer], None]) -> bool:
        """Hand the message to the pipeline and wait until it is done (delivered or stored), within the slots."""
        assert service.pipeline is not None
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        async with slots:
            start(service.pipeline, finalizer_for(done))
            return await done

    not_accepted = {"error": "not accepted; send it again"}

    @app.post("/ingest/chirpstack", tags=["ingest"], summary="ChirpStack v4 HTTP integration (JSON or protobuf)",
              responses={400: {"description": "not a ChirpStack event"}})
    async def ingest_chirpstack(
        request: Request, event: str = Query("up", description="ChirpStack sets ?event=up|join|status|log|..."),
    ) -> Response:
        received_at = time.time()
        caller = request.scope.get("state", {}).get(CHIRPSTACK_CALLER)
        if not isinstance(caller, ChirpStackCaller):   # the guard always sets it; refuse rather than trust
            return json_response({"error": "missing integration token"}, status_code=401)
        if event not in CHIRPSTACK_EVENTS:
            return json_response({"error": f"unknown ChirpStack event {event[:40]!r}: ?event= must be one of "
                                           f"{', '.join(CHIRPSTACK_EVENTS)}"}, status_code=400)
        if (refused := intake_unavailable()) is not None:
            return refused
        body = await request.body()
        try:
            ev = parse(event, body, request.headers.get("content-type"))
        except EventParseError as exc:
            service.metrics.malformed.labels(CHIRPSTACK_HTTP).inc()
            return json_response({"error": f"not a ChirpStack {event!r} event: {exc}"}, status_code=400)
        if caller.tenant_id is not None and ev.tenant_id.lower() != caller.tenant_id:
            return json_response({"error": "this integration token is bound to another ChirpStack tenant than the"
                                           " event's deviceInfo.tenantId"}, status_code=403)
        service.metrics.received.labels(CHIRPSTACK_HTTP, event).inc()
        if not await until_done(lambda pipeline, fin: submit(pipeline, ev, fin, CHIRPSTACK_HTTP, received_at)):
            return json_response(not_accepted, status_code=503)
        result: dict[str, Any] = {"status": "accepted"}
        if ev.event == "up":
            result["id"] = message_id(message_key(ev))
        return json_response(result)

    @app.post("/ingest/http", tags=["ingest"], summary="Data from an NB-IoT or HTTP device, with its ingest key",
              responses={400: {"description": "the body cannot be read"}, 401: {"description": "no or bad key"}})
    async def ingest_http(
        request: Request, fport: int | None = Query(None, ge=0, le=255, description="port, for decoders that use one"),
    ) -> Response:
        received_at = time.time()
        device = request.scope.get("state", {}).get(INGEST_DEVICE)
        if not isinstance(device, Device):   # the guard always sets it; refuse rather than trust
            return json_response({"error": MISSING_INGEST_KEY}, status_code=401)
        if (refused := intake_unavailable()) is not None:
            return refused
        try:
            parsed = parse_body(await request.body(), request.headers.get("content-type"), fport)
        except IngestError as exc:
            service.metrics.malformed.labels(HTTP_SOURCE).inc()
            return json_response({"error": str(exc)}, status_code=400)
        idempotency = request.headers.get("idempotency-key") or request.headers.get("x-message-id")
        if idempotency is not None and len(idempotency) > MAX_IDEMPOTENCY_KEY:   # it is kept in the dedup window
            service.metrics.malformed.labels(HTTP_SOURCE).inc()
            return json_response({"error": f"Idempotency-Key is longer than {MAX_IDEMPOTENCY_KEY} characters"},
                                 status_code=400)
        service.metrics.received.labels(HTTP_SOURCE, "up").inc()
        key_part = idempotency or f"{received_at:.6f}:{uuid.uuid4().hex}"
        dedup = f"http:{device.id}:{key_part}"
        network = {"kind": device.kind, "imei": device.imei, "f_port": parsed.fport}
        if not await until_done(lambda pipeline, fin: pipeline.handle(RawUplink(
                source=HTTP_SOURCE, dedup_key=dedup, payload=parsed.payload, fport=parsed.fport,
                received_at=received_at, measured_at=None, network=network, finalizer=fin, device=device))):
            return json_response(not_accepted, status_code=503)
        return json_response({"status": "accepted", "id": message_id(dedup)}, status_code=202)

    return app


def install_guard(app: FastAPI, service: Service) -> None:
    """The door (``distributor.http_guard``) with this service's credentials, wrong-key throttle and metrics."""
    settings = service.settings
    chirpstack_intake = service.pipeline is not None and bool(
        settings.mqtt_url or settings.chirpstack_http_token or service.cache.snapshot.integration_tokens)
    ingress = IngressMetrics(service.metrics.registry, service.cache, chirpstack_intake)
    credentials = Credentials(service.cache, service.api_context.pool if service.api_context else None,
                              settings.chirpstack_http_token, settings.metrics_token)
    throttle = AuthThrottle(settings.auth_failure_limit, lambda kind: ingress.auth_failures.labels(kind).inc())
    app.add_middleware(HttpGuard, credentials=credentials, throttle=throttle, api=service.api_context is not None)


def json_response(content: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status_code, media_type="application/json")


class EmbeddedServer(uvicorn.Server):
    """uvicorn inside our event loop; the service, not uvicorn, owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def start_http(app: FastAPI, host: str, port: int) -> tuple[EmbeddedServer, asyncio.Task[None], int]:
    """Serve ``app``; returns the server, its task and the bound port (useful when port is 0)."""
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off", access_log=False,
                            log_config=None)   # our JSON handler (logging.configure), not uvicorn's text one
    server = EmbeddedServer(config)
    task = asyncio.create_task(server.serve(), name="http")
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("HTTP server stopped during start-up")
        await asyncio.sleep(0.01)
    bound = port
    for s in server.servers:
        for sock in s.sockets:
            bound = sock.getsockname()[1]
    return server, task, bound
