"""Real consumers for tests: an aiohttp webhook server and an MQTT topic subscriber that record what arrives."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import orjson
from aiohttp import web

from tests.support.broker import free_port


@dataclass
class Received:
    bodies: list[Any] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)      # path and query of each accepted request
    requests: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, predicate: Callable[[list[Any]], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self.bodies):
                self.arrived.clear()
                await self.arrived.wait()


@contextlib.asynccontextmanager
async def webhook(status: Callable[[], int] = lambda: 204, gate: asyncio.Event | None = None,
                  delay_s: float | Callable[[], float] = 0.0,
                  refusal: bytes = b"consumer says no") -> AsyncIterator[tuple[str, Received]]:
    """An HTTP consumer on a free port; ``status`` decides each response code, ``gate`` holds answers,
    ``delay_s`` is the answer time (a function: the test changes it while it runs), ``refusal`` is the
    body of a non-2xx answer. Each accepted request's arrival time is in its headers as ``X-Arrived``."""
    got = Received()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        got.requests += 1
        arrived = time.time()
        if gate is not None:
            await gate.wait()
        wait = delay_s() if callable(delay_s) else delay_s
        if wait:
            await asyncio.sleep(wait)
        code = status()
        if 200 <= code < 300:
            got.raw.append(body)
            got.bodies.append(orjson.loads(body))
            got.headers.append({**request.headers, "X-Arrived": str(arrived)})
            got.paths.append(request.path_qs)
            got.arrived.set()
        return web.Response(status=code, body=b"" if code < 300 else refusal)

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/hook", got
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def topic_subscriber(port: int, topic: str) -> AsyncIterator[Received]:
    got = Received()
    ready = asyncio.Event()

    async def listen() -> None:
        async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5) as client:
            await client.subscribe(topic, qos=1)
            ready.set()
            async for msg in client.messages:
                got.topics.append(str(msg.topic))     # the v5 user properties stand in the headers
                got.headers.append(dict(getattr(msg.properties, "UserProperty", None) or []))
                got.bodies.append(orjson.loads(bytes(msg.payload)))  # type: ignore[arg-type]
                got.arrived.set()

    task = asyncio.create_task(listen())
    await asyncio.wait_for(ready.wait(), 10)
    try:
        yield got
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
