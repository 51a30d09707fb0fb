"""HTTP webhook sink: POST one message, or a batch as one JSON array, to the consumer's URL.

Signing, when the consumer has a secret, so a receiver can tell the request came from us
and is fresh::

    X-Iotd-Timestamp: <unix seconds>
    X-Iotd-Signature: sha256=<hex HMAC-SHA256(secret, b"<timestamp>." + raw body)>

A receiver recomputes the HMAC over the exact bytes it received (before any JSON parsing),
compares in constant time (``verify`` does both), and rejects timestamps more than a few
minutes old so a captured request cannot be replayed later. ``X-Iotd-Message-Id`` lists the
message ids in the body (comma-separated): delivery is at least once, receivers de-duplicate.

Failures map to ``DeliveryError``: 408, 429 and 5xx, timeouts and connection errors are
retryable (with ``Retry-After`` honoured); other 3xx/4xx are a permanent refusal. Redirects
are not followed: a POST silently turned into a GET would look like success.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from distributor.formats import join_batch
from distributor.sinks.base import DeliveryError, Outgoing
from registry.records import Consumer

USER_AGENT = "iotd/0.1"
CONNECTIONS_PER_SINK = 64
_RESPONSE_KEEP = 1024            # bytes of an error response kept for the dead-letter record
_SUCCESS_DRAIN = 64 * 1024       # read (and drop) this much of a 2xx body so the connection is reused


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Iotd-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: int, body: bytes, signature: str) -> bool:
    """Whether ``signature`` is ours for this timestamp and body (constant-time comparison)."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _redacted(url: str) -> str:
    """The URL without credentials or query (either may hold a token) for error details."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


async def _read_some(response: aiohttp.ClientResponse, limit: int) -> bytes:
    data = bytearray()
    while len(data) < limit:
        chunk = await response.content.read(limit - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


class HttpSink:
    """POSTs to one consumer over a pooled aiohttp session (keep-alive, up to 64 connections)."""

    def __init__(self, consumer: Consumer, session: aiohttp.ClientSession | None = None) -> None:
        self._consumer = consumer
        self._url = consumer.url
        self._where = _redacted(consumer.url)
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=consumer.timeout_s)
        content_type = "application/senml+json" if consumer.format == "senml" else "application/json"
        self._headers = {"Content-Type": content_type, "User-Agent": USER_AGENT, **consumer.headers}
        self._single = consumer.batch_size <= 1

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=CONNECTIONS_PER_SINK, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector)
            self._owns_session = True

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None

    def _request(self, batch: list[Outgoing]) -> tuple[bytes, dict[str, str]]:
        if len(batch) == 1 and self._single:
            body = batch[0].body
        else:
            body = join_batch(self._consumer.format, [o.body for o in batch])
        headers = dict(self._headers)
        headers["X-Iotd-Message-Id"] = ",".join(o.message_id for o in batch)
        if self._consumer.secret:
            ts = int(time.time())
            headers["X-Iotd-Timestamp"] = str(ts)
            headers["X-Iotd-Signature"] = sign(self._consumer.secret, ts, body)
        return body, headers

    async def send(self, batch: list[Outgoing]) -> None:
        if not batch:
            return
        if self._session is None:
            raise DeliveryError("sink not started")
        body, headers = self._request(batch)
        try:
            async with self._session.post(self._url, data=body, headers=headers, timeout=self._timeout,
                                          allow_redirects=False) as resp:
                status = resp.status
                if 200 <= status < 300:
                    await _read_some(resp, _SUCCESS_DRAIN)
                    return
                text = (await _read_some(resp, _RESPONSE_KEEP)).decode("utf-8", errors="replace")
                retry_after = resp.headers.get("Retry-After")
        except TimeoutError:  # asyncio.TimeoutError and aiohttp.ServerTimeoutError alike
            raise DeliveryError(f"timeout after {self._consumer.timeout_s} s: {self._where}") from None
        except aiohttp.ClientConnectorError as exc:
            reason = exc.os_error.strerror or type(exc.os_error).__name__
            kind = "connection refused" if isinstance(exc.os_error, ConnectionRefusedError) else "cannot connect"
            raise DeliveryError(f"{kind}: {exc.host}:{exc.port}: {reason}") from None
        except (aiohttp.ClientError, OSError) as exc:
            detail = str(exc).replace(self._url, self._where)
            raise DeliveryError(f"connection error: {type(exc).__name__}: {detail}") from None
        if status in (408, 429) or status >= 500:
            raise DeliveryError(f"HTTP {status}", retryable=True, status=status,
                                retry_after=parse_retry_after(retry_after), response=text)
        raise DeliveryError(f"HTTP {status}: refused", retryable=False, status=status, response=text)
