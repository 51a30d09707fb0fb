"""The HTTP sink against a real aiohttp server on loopback: bodies, headers, signatures, failure classes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from email.utils import formatdate
from typing import Any

import orjson
import pytest
from aiohttp import web

from distributor.sinks.base import REPLAY, DeliveryError, Outgoing
from distributor.sinks.http import HttpSink, parse_retry_after, sign, verify
from registry.records import Consumer
from registry.targets import TargetPolicy
from tests.support.broker import free_port
from tests.support.scenario import LOOPBACK

SECRET = "s3cret-signing-key"
ON_LOOPBACK = TargetPolicy.from_setting(LOOPBACK)       # the test servers listen on 127.0.0.1
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/hook", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def sink_for(url: str, **fields: Any) -> AsyncIterator[HttpSink]:
    options: dict[str, Any] = {"secret": SECRET, "timeout_s": 2.0, **fields}
    s = HttpSink(Consumer(id="c1", organization_id="o1", name="hook", kind="http", url=url, **options),
                 policy=ON_LOOPBACK)
    await s.start()
    try:
        yield s
    finally:
        await s.close()


def message(n: int) -> Outgoing:
    return Outgoing(message_id=f"m{n}", body=orjson.dumps({"n": n}), topic_vars={})


def replying(status: int, text: str = "", headers: dict[str, str] | None = None) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=status, text=text, headers=headers)
    return handle


class Recorder:
    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        return web.Response(status=204)


async def failure(handler: Handler, **fields: Any) -> DeliveryError:
    async with server(handler) as url, sink_for(url, **fields) as s:
        with pytest.raises(DeliveryError) as err:
            await s.send([message(1)])
    assert SECRET not in str(err.value) and SECRET not in (err.value.response or "")
    return err.value


async def test_a_single_message_is_posted_as_is_with_headers() -> None:
    rec = Recorder()
    async with server(rec.handle) as url, sink_for(url, headers={"Authorization": "Bearer abc"}) as s:
        await s.send([message(1)])
    [(headers, body)] = rec.requests
    assert body == b'{"n":1}'
    assert headers["Content-Type"] == "application/json" and headers["User-Agent"] == "iotd/0.1"
    assert headers["X-Iotd-Message-Id"] == "m1" and headers["Authorization"] == "Bearer abc"


async def test_a_batch_is_one_json_array_and_senml_says_so() -> None:
    rec = Recorder()
    async with server(rec.handle) as url, sink_for(url, batch_size=10) as s:
        await s.send([message(1), message(2), message(3)])
    async with server(rec.handle) as url, sink_for(url, format="senml") as s:
        await s.send([Outgoing("m9", b'[{"n":"t","v":1}]', {})])
    (headers, body), (senml_headers, _) = rec.requests
    assert orjson.loads(body) == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert headers["X-Iotd-Message-Id"] == "m1,m2,m3"
    assert senml_headers["Content-Type"] == "application/senml+json"


async def test_a_large_batch_is_accepted_by_a_server_with_the_usual_header_limit() -> None:
    """500 UUID ids in X-Iotd-Message-Id made an 18 KB header line: aiohttp (like nginx and Apache) answers
    400 above 8 KB, so every large batch became a dead letter. The ids then travel only in the body."""
    rec = Recorder()
    batch = [Outgoing(f"0193f1a2-7426-800a-91c4-{n:012d}", orjson.dumps({"n": n}), {}) for n in range(500)]
    async with server(rec.handle) as url, sink_for(url, batch_size=500) as s:
        await s.send(batch)
        await s.send(batch[:3])
    (big, body), (small, _) = rec.requests
    assert len(orjson.loads(body)) == 500 and big["X-Iotd-Message-Count"] == "500"
    assert "X-Iotd-Message-Id" not in big
    assert small["X-Iotd-Message-Id"] == ",".join(o.message_id for o in batch[:3])
    assert small["X-Iotd-Message-Count"] == "3"


async def test_the_signature_verifies_with_the_secret_only() -> None:
    rec = Recorder()
    async with server(rec.handle) as url, sink_for(url) as s:
        await s.send([message(1)])
    [(headers, body)] = rec.requests
    ts, signature = int(headers["X-Iotd-Timestamp"]), headers["X-Iotd-Signature"]
    assert signature.startswith("sha256=") and signature == sign(SECRET, ts, body)
    assert verify(SECRET, ts, body, signature)
    assert not verify("wrong-secret", ts, body, signature)
    assert not verify(SECRET, ts + 1, body, signature)
    assert not verify(SECRET, ts, body + b" ", signature)


async def test_no_secret_means_no_signature_headers() -> None:
    rec = Recorder()
    async with server(rec.handle) as url, sink_for(url, secret=None) as s:
        await s.send([message(1)])
    assert "X-Iotd-Signature" not in rec.requests[0][0] and "X-Iotd-Timestamp" not in rec.requests[0][0]


async def test_503_with_retry_after_is_retryable() -> None:
    err = await failure(replying(503, "busy", {"Retry-After": "7"}))
    assert (err.retryable, err.status, err.retry_after, err.response) == (True, 503, 7.0, "busy")


async def test_429_and_408_are_retryable() -> None:
    for status in (429, 408):
        err = await failure(replying(status))
        assert err.retryable and err.status == status


async def test_400_is_permanent_and_keeps_the_response() -> None:
    err = await failure(replying(400, "bad field 'temp'" + "x" * 5000))
    assert not err.retryable and err.status == 400
    assert err.response is not None and err.response.startswith("bad field 'temp'") and len(err.response) == 256


async def test_redirects_are_not_followed() -> None:
    err = await failure(replying(302, headers={"Location": "/elsewhere"}))
    assert not err.retryable and err.status == 302


async def test_connection_refused_is_retryable() -> None:
    async with sink_for(f"http://127.0.0.1:{free_port()}/hook") as s:
        with pytest.raises(DeliveryError) as err:
            await s.send([message(1)])
    assert err.value.retryable and err.value.status is None
    assert err.value.detail == "connection refused" and SECRET not in str(err.value)


async def test_a_slow_consumer_times_out_retryably() -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(status=204)

    async with server(slow) as url, sink_for(url, timeout_s=0.2) as s:
        try:
            with pytest.raises(DeliveryError) as err:
                await s.send([message(1)])
        finally:
            release.set()
    assert err.value.retryable and err.value.detail == "timeout"
    assert SECRET not in str(err.value)


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(formatdate(1_000_030, usegmt=True), now=1_000_000) == 30.0
    assert parse_retry_after(formatdate(999_000, usegmt=True), now=1_000_000) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


async def test_a_replayed_batch_says_which_replay_it_belongs_to() -> None:
    seen: list[str | None] = []

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        seen.append(request.headers.get("X-Iotd-Replay"))
        return web.Response(status=204)

    async with server(handle) as url, sink_for(url, batch_size=10) as s:
        await s.send([message(1), message(2)])
        await s.send([Outgoing(f"m{n}", b"{}", {REPLAY: "job-7"}) for n in (3, 4)])
    assert seen == [None, "job-7"]
