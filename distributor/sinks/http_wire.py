"""A lean HTTP/1.1 client for the webhook sink: one POST at a time per keep-alive connection.

Why not aiohttp's client here (it stays everywhere else): issue 16 measured the webhook path with
batch_size 1 at 0.33 of the C forwarder, with aiohttp's per-request objects, tasks and timers about
half of iotd's CPU per message. This client writes one prebuilt request and parses the answer in
``data_received``; the same run went to ~0.6. It does only what the sink needs, and says so:

* ``POST`` with ``Content-Length``; no ``Expect``, no compression asked for (``Accept-Encoding`` is
  not sent, so the answer comes as is), no cookies kept, no proxy, redirects never followed.
* Answers: ``Content-Length``, ``chunked`` or read-until-close bodies; ``1xx`` interim answers skipped.
  At most ``keep`` bytes of a body are kept; a body longer than ``DRAIN`` is not read to its end:
  the connection is closed instead of reused. A head over ``HEAD_LIMIT`` bytes or anything that is
  not HTTP/1.x is a broken answer (``ProtocolError``) and the connection is closed.
* Connections: up to ``limit`` per sink, reused last-in-first-out while younger than ``IDLE_REUSE_S``
  idle (servers commonly close keep-alive connections after 15-75 s). A reused connection that the
  server closed before any byte of its answer is retried once on a new connection; the receiver may
  then see the request twice, which at-least-once delivery allows (receivers de-duplicate by id).
* Where it connects is ``guard.allowed_addresses``' business: every address is checked after DNS,
  right before the connect. TLS verifies the certificate for the URL's host with the system's CAs.

Timeouts are the caller's (``asyncio.timeout`` around ``post``); a cancelled exchange closes its
connection, since its state is unknown.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from dataclasses import dataclass

from yarl import URL

from distributor.sinks.guard import allowed_addresses
from registry.targets import TargetPolicy

HEAD_LIMIT = 64 * 1024          # bytes of status line and headers (servers use 8-64 KB)
CHUNK_LINE_LIMIT = 1024         # bytes of a chunk-size line with its extensions
DRAIN = 64 * 1024               # read (and drop) at most this much of a body so the connection is reused
IDLE_REUSE_S = 15.0             # a connection idle longer is closed, not reused
DNS_CACHE_S = 30.0
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_BAD_VALUE = re.compile(r"[\r\n\x00]")
_DIGITS = re.compile(r"^[0-9]{1,18}$")          # ASCII only: str.isdigit() also takes "²", which int() refuses
_HEX = re.compile(rb"^[0-9A-Fa-f]{1,15}$")


class ProtocolError(Exception):
    """The answer was not HTTP/1.x as RFC 9112 writes it."""


class ConnectionLost(Exception):
    """The connection closed before the answer was complete."""

    def __init__(self, answered: bool) -> None:
        super().__init__("connection closed before the answer was complete")
        self.answered = answered     # whether any byte of the answer had arrived


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]      # lower-case names; the first of repeated ones
    body: bytes                  # at most the ``keep`` bytes asked for


def header_block(headers: dict[str, str]) -> bytes:
    """``Name: value`` lines; a name that is not a token or a value with CR, LF or NUL is a ``ValueError``
    (it would let a consumer's configuration write its own header lines or a second request)."""
    lines = []
    for name, value in headers.items():
        if not _TOKEN.match(name) or _BAD_VALUE.search(value):
            raise ValueError(f"HTTP header {name[:100]!r} is not a valid header line")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("latin-1", "replace")


class _Parser:
    """The answer to one request, fed as bytes arrive; ``answer`` is set when it is complete."""

    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._buffer = bytearray()
        self._state = "head"
        self._remaining = 0            # of a Content-Length body or the current chunk
        self._body = bytearray()
        self._read = 0                 # body bytes seen
        self.head: tuple[int, dict[str, str], bool] | None = None   # status, headers, reusable
        self.answer: Answer | None = None
        self.reusable = False
        self.started = False

    def feed(self, data: bytes) -> None:
        self.started = True
        self._buffer += data
        while self.answer is None and self._step():
            pass

    def end(self) -> None:
        """The server closed the connection: completes a read-until-close body, else the answer is cut."""
        if self._state == "until-close":
            self._finish(reusable=False)
        elif self.answer is None:
            raise ConnectionLost(self.started)

    def _step(self) -> bool:
        if self._state == "head":
            return self._parse_head()
        if self._state == "length":
            return self._take_length()
        if self._state == "until-close":
            self._take(len(self._buffer))
            if self._read > DRAIN and len(self._body) >= self._keep:
                self._finish(reusable=False)
            return False
        return self._take_chunked()

    def _parse_head(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > HEAD_LIMIT:
                raise ProtocolError("the answer's head is too large")
            return False
        if end > HEAD_LIMIT:
            raise ProtocolError("the answer's head is too large")
        lines = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        del self._buffer[:end + 4]
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if version not in ("HTTP/1.1", "HTTP/1.0") or not _DIGITS.match(code) or len(code) != 3:
            raise ProtocolError("not an HTTP/1.x status line")
        status = int(code)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                raise ProtocolError("a header line without a name")
            headers.setdefault(name.lower(), value.strip())
        if 100 <= status < 200:   # interim (100 Continue, 103 Early Hints): the real answer follows
            return True
        connection = headers.get("connection", "").lower()
        reusable = "close" not in connection and (version == "HTTP/1.1" or "keep-alive" in connection)
        self.head = (status, headers, reusable)
        if status in (204, 304):
            self._finish(reusable)
        elif headers.get("transfer-encoding", "").lower().rsplit(",", 1)[-1].strip() == "chunked":
            self._state = "chunk-size"
        elif "transfer-encoding" in headers:
            self._state = "until-close"
        elif "content-length" in headers:
            length = headers["content-length"]
            if not _DIGITS.match(length):
                raise ProtocolError("Content-Length is not a number")
            self._remaining = int(length)
            self._state = "length"
            if self._remaining == 0:
                self._finish(reusable)
        else:
            self._state = "until-close"
        return self.answer is None

    def _take(self, n: int) -> None:
        room = self._keep - len(self._body)
        if room > 0:
            self._body += self._buffer[:min(n, room)]
        del self._buffer[:n]
        self._read += n

    def _take_length(self) -> bool:
        n = min(self._remaining, len(self._buffer))
        self._take(n)
        self._remaining -= n
        assert self.head is not None
        if self._remaining == 0:
            self._finish(self.head[2])
        elif self._read > DRAIN and len(self._body) >= self._keep:
            self._finish(reusable=False)     # too long to drain: close rather than read it all
        return False

    def _take_chunked(self) -> bool:
        assert self.head is not None
        if self._state == "chunk-size":
            end = self._buffer.find(b"\r\n")
            if end < 0:
                if len(self._buffer) > CHUNK_LINE_LIMIT:
                    raise ProtocolError("a chunk-size line is too long")
                return False
            size = bytes(self._buffer[:end]).split(b";", 1)[0].strip()
            del self._buffer[:end + 2]
            if not _HEX.match(size):
                raise ProtocolError("a chunk size is not hexadecimal")
            self._remaining = int(size, 16)
            self._state = "chunk-data" if self._remaining else "trailers"
            return True
        if self._state == "chunk-data":
            n = min(self._remaining, len(self._buffer))
            self._take(n)
            self._remaining -= n
            if self._read > DRAIN and len(self._body) >= self._keep:
                self._finish(reusable=False)
                return False
            if self._remaining:
                return False
            self._state = "chunk-end"
            return True
        if self._state == "chunk-end":
            if len(self._buffer) < 2:
                return False
            if self._buffer[:2] != b"\r\n":
                raise ProtocolError("a chunk does not end with CRLF")
            del self._buffer[:2]
            self._state = "chunk-size"
            return True
        # trailers: lines up to an empty one
        end = self._buffer.find(b"\r\n")
        if end < 0:
            if len(self._buffer) > HEAD_LIMIT:
                raise ProtocolError("the trailers are too large")
            return False
        del self._buffer[:end + 2]
        if end == 0:
            self._finish(self.head[2])
        return self.answer is None

    def _finish(self, reusable: bool) -> None:
        assert self.head is not None
        status, headers, _ = self.head
        self.reusable = reusable and not self._buffer   # bytes after the answer: the stream is not in step
        self.answer = Answer(status, headers, bytes(self._body))


class _Connection(asyncio.Protocol):
    """One keep-alive connection; ``exchange`` sends a request and waits for its answer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = time.monotonic()
        self._parser: _Parser | None = None
        self._waiter: asyncio.Future[Answer] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        parser, waiter = self._parser, self._waiter
        if parser is None or waiter is None or waiter.done():
            self.close()   # bytes nobody asked for: the stream is not in step
            return
        try:
            parser.feed(data)
        except ProtocolError as exc:
            waiter.set_exception(exc)
            self.close()
            return
        if parser.answer is not None:
            self._parser = None
            waiter.set_result(parser.answer)
            if not parser.reusable:
                self.close()

    def eof_received(self) -> bool:
        self._ended(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._ended(exc)

    def _ended(self, exc: Exception | None) -> None:
        parser, waiter = self._parser, self._waiter
        self._parser = None
        self.closed = True
        if parser is None or waiter is None or waiter.done():
            return
        try:
            parser.end()
        except ConnectionLost as lost:   # the OS's reason when there is one (reset, TLS), unless answered
            waiter.set_exception(exc if isinstance(exc, OSError) and not lost.answered else lost)
            return
        assert parser.answer is not None
        waiter.set_result(parser.answer)

    async def exchange(self, request: bytes, keep: int) -> Answer:
        assert self.transport is not None
        self._parser = _Parser(keep)
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        try:
            return await self._waiter
        except BaseException:
            self.close()   # cancelled or failed mid-exchange: its state is unknown
            raise
        finally:
            self.idle_since = time.monotonic()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class WirePool:
    """Keep-alive connections to one URL's host and port, and the request line and fixed headers for it."""

    def __init__(self, url: URL, headers: dict[str, str], policy: TargetPolicy, *, limit: int = 64,
                 tls: ssl.SSLContext | None = None) -> None:
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("the URL must be http:// or https:// with a host")
        self._host = url.host
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._tls = (tls or ssl.create_default_context()) if url.scheme == "https" else None
        self._policy = policy
        self._prefix = (f"POST {url.raw_path_qs or '/'} HTTP/1.1\r\nHost: {url.host_port_subcomponent}\r\n"
                        .encode("ascii") + header_block(headers))
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(limit)
        self._addresses: tuple[float, list[str]] | None = None
        self._closed = False

    async def post(self, body: bytes, headers: dict[str, str], keep: int) -> Answer:
        """POST ``body`` with these extra headers; the answer with at most ``keep`` bytes of its body."""
        request = b"".join((self._prefix, header_block(headers), b"Content-Length: %d\r\n\r\n" % len(body), body))
        async with self._slots:
            conn = self._reuse()
            if conn is not None:
                try:
                    return await self._exchange(conn, request, keep)
                except ConnectionLost as lost:   # closed by the server while idle: once more on a new one
                    if lost.answered:
                        raise
                except (ConnectionResetError, BrokenPipeError):
                    pass
            return await self._exchange(await self._connect(), request, keep)

    async def _exchange(self, conn: _Connection, request: bytes, keep: int) -> Answer:
        answer = await conn.exchange(request, keep)
        if not conn.closed and not self._closed:
            self._idle.append(conn)
        return answer

    def _reuse(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and now - conn.idle_since < IDLE_REUSE_S:
                return conn
            conn.close()
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        error: OSError | None = None
        self._addresses, cached = None, await self._resolve()   # cached again only once a connect works
        for address in cached:
            try:
                _, conn = await loop.create_connection(
                    _Connection, address, self._port, ssl=self._tls,
                    server_hostname=self._host if self._tls is not None else None)
                self._addresses = (time.monotonic(), cached)
                return conn
            except OSError as exc:   # the next address; the last error says why none worked
                error = exc
        assert error is not None
        raise error

    async def _resolve(self) -> list[str]:
        if self._addresses is not None and time.monotonic() - self._addresses[0] < DNS_CACHE_S:
            return self._addresses[1]
        return await allowed_addresses(self._policy, self._host, self._port)

    async def close(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()
