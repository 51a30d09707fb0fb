"""The HTTP face of the service: health, readiness, metrics and ingest endpoints (FastAPI).

Ingest answers 2xx only once the message is done (delivered or durably spilled), so a
sender that gets an error or no answer can safely send again: message ids are deterministic.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import orjson
import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from distributor.ack import finalizer_for
from distributor.envelope import message_id
from distributor.sources.chirpstack import dedup_key, submit
from distributor.sources.chirpstack_event import EventParseError
from distributor.sources.chirpstack_parse import parse

if TYPE_CHECKING:
    from distributor.service import Service

CHIRPSTACK_HTTP = "chirpstack-http"


def create_app(service: Service) -> FastAPI:
    app = FastAPI(title="iotd", version="0.1.0", description="IoT message distributor and device registry for cities.")

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

    @app.post("/ingest/chirpstack", tags=["ingest"], summary="ChirpStack v4 HTTP integration (JSON or protobuf)",
              responses={400: {"description": "not a ChirpStack event"}})
    async def ingest_chirpstack(
        request: Request, event: str = Query("up", description="ChirpStack sets ?event=up|join|status|log|...")
    ) -> Response:
        received_at = time.time()
        body = await request.body()
        try:
            ev = parse(event, body, request.headers.get("content-type"))
        except EventParseError as exc:
            service.metrics.malformed.labels(CHIRPSTACK_HTTP).inc()
            return json_response({"error": f"not a ChirpStack {event!r} event: {exc}"}, status_code=400)
        service.metrics.received.labels(CHIRPSTACK_HTTP, event).inc()
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        submit(service.pipeline, ev, finalizer_for(done), CHIRPSTACK_HTTP, received_at)
        await done
        result: dict[str, Any] = {"status": "accepted"}
        if ev.event == "up":
            result["id"] = message_id(dedup_key(ev))
        return json_response(result)

    return app


def json_response(content: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status_code, media_type="application/json")


class EmbeddedServer(uvicorn.Server):
    """uvicorn inside our event loop; the service, not uvicorn, owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def start_http(app: FastAPI, host: str, port: int) -> tuple[EmbeddedServer, asyncio.Task[None], int]:
    """Serve ``app``; returns the server, its task and the bound port (useful when port is 0)."""
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off", access_log=False)
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
