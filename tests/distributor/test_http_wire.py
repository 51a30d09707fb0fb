"""The webhook sink's HTTP/1.1 client (``distributor.sinks.http_wire``) against real servers on loopback:
a scripted asyncio server that answers exactly the bytes a test gives it (well-formed or not), and TLS
with a certificate made for the test."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from yarl import URL

from distributor.service import UnusableSink, default_sink_factory
from distributor.sinks.base import DeliveryError, Outgoing
from distributor.sinks.http import HttpSink
from distributor.sinks.http_wire import DRAIN, HEAD_LIMIT, WirePool, header_block
from registry.records import Consumer
from registry.targets import TargetPolicy
from tests.support.certs import self_signed
from tests.support.scenario import LOOPBACK

ON_LOOPBACK = TargetPolicy.from_setting(LOOPBACK)
MESSAGE = Outgoing("m1", orjson.dumps({"n": 1}), {"device": "d"})
NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"

Answerer = Callable[[int, int, bytes], bytes | None]   # (connection no., request no. on it, request) → answer


@dataclass
class Scripted:
    port: int
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    return head + await reader.readexactly(length)


@contextlib.asynccontextmanager
async def scripted(answer: Answerer, tls: ssl.SSLContext | None = None) -> AsyncIterator[Scripted]:
    """A server writing ``answer(...)`` for each request; ``None`` closes the connection without an answer."""
    state = Scripted(0)
    handlers: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        state.connections += 1
        number, k = state.connections, 0
        try:
            while True:
                request = await _read_request(reader)
                state.requests.append(request)
                k += 1
                reply = answer(number, k, request)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            handlers.discard(task)

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=tls)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)


def consumer(port: int, scheme: str = "http", **fields: object) -> Consumer:
    return Consumer(id="c", organization_id="o", name="h", kind="http", url=f"{scheme}://127.0.0.1:{port}/hook",
                    **{"timeout_s": 3, **fields})  # type: ignore[arg-type]


async def send(sink: HttpSink, message: Outgoing = MESSAGE) -> DeliveryError | None:
    try:
        await sink.send([message])
    except DeliveryError as exc:
        return exc
    return None


@contextlib.asynccontextmanager
async def started(c: Consumer) -> AsyncIterator[HttpSink]:
    sink = HttpSink(c, policy=ON_LOOPBACK)
    await sink.start()
    try:
        yield sink
    finally:
        await sink.close()


async def test_one_connection_carries_many_requests() -> None:
    async with scripted(lambda n, k, r: NO_CONTENT) as srv, started(consumer(srv.port)) as sink:
        for _ in range(5):
            assert await send(sink) is None
    assert srv.connections == 1 and len(srv.requests) == 5
    head = srv.requests[0].split(b"\r\n\r\n")[0].decode()
    assert head.startswith("POST /hook HTTP/1.1\r\n") and f"Host: 127.0.0.1:{srv.port}" in head
    assert f"Content-Length: {len(MESSAGE.body)}" in head and "X-Iotd-Message-Id: m1" in head
    assert srv.requests[0].endswith(MESSAGE.body)


async def test_a_connection_the_server_drops_before_answering_is_retried_once_on_a_new_one() -> None:
    # the race every keep-alive client meets: the server closes an idle connection as the request goes out
    async with scripted(lambda n, k, r: None if k == 2 else NO_CONTENT) as srv, started(consumer(srv.port)) as sink:
        assert await send(sink) is None
        assert await send(sink) is None
    assert srv.connections == 2 and len(srv.requests) == 3


async def test_a_server_that_drops_every_request_is_a_retryable_failure_not_a_loop() -> None:
    async with scripted(lambda n, k, r: None) as srv, started(consumer(srv.port)) as sink:
        error = await send(sink)
    assert error is not None and error.detail == "connection lost" and error.retryable
    assert len(srv.requests) == 1


async def test_chunked_answers_are_read_and_an_error_body_kept() -> None:
    chunked = (b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5;ext=1\r\nbad r\r\n9\r\nequest: x\r\n0\r\nTrailer: y\r\n\r\n")
    async with scripted(lambda n, k, r: chunked if k == 1 else NO_CONTENT) as srv, \
            started(consumer(srv.port)) as sink:
        error = await send(sink)
        assert error is not None and error.status == 400 and not error.retryable
        assert error.response == "bad request: x"
        assert await send(sink) is None          # the stream stayed in step: the same connection again
    assert srv.connections == 1


async def test_interim_answers_are_skipped_and_retry_after_is_read() -> None:
    busy = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Busy\r\nRetry-After: 7\r\nContent-Length: 4\r\n\r\nbusy"
    async with scripted(lambda n, k, r: busy) as srv, started(consumer(srv.port)) as sink:
        error = await send(sink)
    assert error is not None and error.status == 503 and error.retry_after == 7 and error.response == "busy"


async def test_an_http_1_0_answer_without_length_ends_when_the_server_closes() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\n\r\nuntil close")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with started(consumer(port)) as sink:
            assert await send(sink) is None
            assert await send(sink) is None      # not reused: a new connection
    finally:
        server.close()


@pytest.mark.parametrize("answer", [
    b"HELLO THERE\r\n\r\n",                                       # not HTTP
    b"HTTP/1.1 2x0 OK\r\n\r\n",                                   # no status code
    b"HTTP/1.1 \xb2\xb2\xb2 OK\r\n\r\n",                          # "²²²": digits to str.isdigit() only
    b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n",           # no length
    b"HTTP/1.1 200 OK\r\nX: " + b"a" * (HEAD_LIMIT + 10),         # a head without end
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",  # not a chunk size
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n",  # a negative one
    b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n",      # "²": a digit to str.isdigit(), not to int()
], ids=["not-http", "status", "superscript-status", "length", "endless-head", "chunk-size", "negative-chunk",
        "superscript-length"])
async def test_a_broken_answer_is_a_lost_connection(answer: bytes) -> None:
    async with scripted(lambda n, k, r: answer) as srv, started(consumer(srv.port)) as sink:
        error = await send(sink)
    assert error is not None and error.detail == "connection lost" and error.retryable


async def test_a_retry_after_that_is_no_number_is_ignored_not_a_crash() -> None:
    busy = b"HTTP/1.1 503 Busy\r\nRetry-After: \xb2\r\nContent-Length: 0\r\n\r\n"   # "²" in Latin-1
    async with scripted(lambda n, k, r: busy) as srv, started(consumer(srv.port)) as sink:
        error = await send(sink)
    assert error is not None and error.status == 503 and error.retryable and error.retry_after is None


async def test_a_long_success_body_is_not_read_to_its_end() -> None:
    huge = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (50 * DRAIN) + b"x" * (2 * DRAIN)
    async with scripted(lambda n, k, r: huge if k == 1 else NO_CONTENT) as srv, started(consumer(srv.port)) as sink:
        assert await asyncio.wait_for(send(sink), 2) is None   # done after DRAIN bytes, not 50 × DRAIN
        assert await send(sink) is None
    assert srv.connections == 2       # the first connection was closed, not reused


async def test_a_silent_server_times_out() -> None:
    async with scripted(lambda n, k, r: b"HTTP/1.1 200 OK\r\n") as srv, \
            started(consumer(srv.port, timeout_s=0.3)) as sink:
        error = await send(sink)
    assert error is not None and error.detail == "timeout" and error.retryable


@pytest.mark.parametrize("headers", [{"X-Evil": "a\r\nX-Injected: 1"}, {"Bad Name": "v"}, {"X-Nul": "a\x00b"}])
def test_a_header_that_would_write_its_own_lines_is_refused(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="not a valid header line"):
        header_block(headers)
    sink = default_sink_factory("test", ON_LOOPBACK)(consumer(1, headers=headers))
    assert isinstance(sink, UnusableSink)


async def test_tls_verifies_the_certificate_for_the_host(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "localhost")
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    async with scripted(lambda n, k, r: NO_CONTENT, tls=server_tls) as srv:
        async with started(consumer(srv.port, "https")) as sink:   # the system's CAs do not know it
            error = await send(sink)
            assert error is not None and error.detail == "TLS error" and error.retryable
        assert srv.requests == []
        trusting = ssl.create_default_context(cafile=str(cert))
        by_name = WirePool(URL(f"https://localhost:{srv.port}/hook"), {}, ON_LOOPBACK, tls=trusting)
        assert (await by_name.post(b"{}", {}, 100)).status == 204
        await by_name.close()
        by_address = WirePool(URL(f"https://127.0.0.1:{srv.port}/hook"), {}, ON_LOOPBACK, tls=trusting)
        with pytest.raises(ssl.SSLCertVerificationError):          # trusted, but not for this host
            await by_address.post(b"{}", {}, 100)
        await by_address.close()
        assert len(srv.requests) == 1
