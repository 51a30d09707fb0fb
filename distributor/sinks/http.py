"""HTTP webhook sink: POST one message, or a batch as one JSON array, to the consumer's URL.

Signing, when the consumer has a secret, so a receiver can tell the request came from us
and is fresh::

    X-Iotd-Timestamp: <unix seconds>
    X-Iotd-Signature: sha256=<hex HMAC-SHA256(secret, b"<timestamp>." + raw body)>

A receiver recomputes the HMAC over the exact bytes it received (before any JSON parsing),
compares in constant time (``verify`` does both), and rejects timestamps more than a few
minutes old so a captured request cannot be replayed later. ``X-Iotd-Message-Id`` lists the
message ids in the body (comma-separated) when the list fits in ``MESSAGE_ID_HEADER_MAX`` characters
(about 100 ids): most servers refuse a header line over 8 KB with a 400 (aiohttp, nginx, Apache), which
would make every large batch a permanent refusal. A larger batch carries its ids only in the body.
``X-Iotd-Message-Count`` always says how many messages the request holds. Delivery is at least
once: receivers de-duplicate by id.

Failures map to ``DeliveryError`` with a reason class, never a host, port or OS error text (the
delivery log is the tenant's; a text like "connection refused: 10.0.0.5:22" would make it a port
scanner): "HTTP <status>", "timeout", "connection refused", "cannot connect", "DNS lookup failed",
"TLS error", "target address not allowed", "connection lost", "invalid URL". 408, 429 and 5xx,
timeouts and connection errors are retryable (with ``Retry-After`` honoured); other 3xx/4xx are a
permanent refusal, and at most ``storable.RESPONSE_TEXT`` bytes of such an answer are read and kept.
Redirects are not followed: a POST silently turned into a GET would look like success, and a
redirect could point anywhere. Where the sink may connect is ``distributor.sinks.guard``'s business.

Credentials in the URL (``https://user:password@host/...``) become an ``Authorization: Basic``
header built here; if the consumer configured its own ``Authorization`` header, that header wins
and the URL's credentials are not sent. (aiohttp itself refuses a URL with credentials plus an
Authorization header with a ``ValueError``, which used to abort the retry worker's pass.)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from email.utils import parsedate_to_datetime

import aiohttp
from yarl import URL

from distributor.formats import join_batch
from distributor.sinks.base import DeliveryError, Outgoing
from distributor.sinks.guard import GuardedResolver, failure_class, guarded_socket_factory
from registry import storable
from registry.records import Consumer
from registry.targets import TargetPolicy

USER_AGENT = "iotd/0.1"
CONNECTIONS_PER_SINK = 64
_RESPONSE_KEEP = storable.RESPONSE_TEXT   # bytes of an error answer read and kept for the dead letter
_SUCCESS_DRAIN = 64 * 1024       # read (and drop) this much of a 2xx body so the connection is reused
MESSAGE_ID_HEADER_MAX = 4000     # characters: half the 8 KB header-line limit common servers enforce


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


def target_and_headers(url: str, headers: dict[str, str]) -> tuple[URL, dict[str, str]]:
    """The URL without userinfo, and the headers with ``Authorization: Basic`` from it (unless one is set)."""
    parsed = URL(url)
    if parsed.user is None and parsed.password is None:
        return parsed, dict(headers)
    out = dict(headers)
    if not any(name.lower() == "authorization" for name in headers):
        pair = f"{parsed.user or ''}:{parsed.password or ''}".encode()
        out["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    return parsed.with_user(None), out


def _connect_failure(exc: aiohttp.ClientConnectorError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientConnectorSSLError):
        return "TLS error"
    if isinstance(exc, aiohttp.ClientConnectorDNSError) and failure_class(exc.os_error) == "cannot connect":
        return "DNS lookup failed"
    return failure_class(exc.os_error)


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

    def __init__(self, consumer: Consumer, *, policy: TargetPolicy) -> None:
        self._consumer = consumer
        self._policy = policy
        content_type = "application/senml+json" if consumer.format == "senml" else "application/json"
        self._url, self._headers = target_and_headers(
            consumer.target_url, {"Content-Type": content_type, "User-Agent": USER_AGENT, **consumer.headers})
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(total=consumer.timeout_s)
        self._single = consumer.batch_size <= 1

    async def start(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=CONNECTIONS_PER_SINK, ttl_dns_cache=300,
                                             resolver=GuardedResolver(self._policy),
                                             socket_factory=guarded_socket_factory(self._policy))
            self._session = aiohttp.ClientSession(connector=connector)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = None

    def _request(self, batch: list[Outgoing]) -> tuple[bytes, dict[str, str]]:
        if len(batch) == 1 and self._single:
            body = batch[0].body
        else:
            body = join_batch(self._consumer.format, [o.body for o in batch])
        headers = dict(self._headers)
        ids = ",".join(o.message_id for o in batch)
        if len(ids) <= MESSAGE_ID_HEADER_MAX:
            headers["X-Iotd-Message-Id"] = ids
        headers["X-Iotd-Message-Count"] = str(len(batch))
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
                text = storable.from_bytes(await _read_some(resp, _RESPONSE_KEEP), storable.RESPONSE_TEXT)
                retry_after = resp.headers.get("Retry-After")
        except TimeoutError:  # asyncio.TimeoutError and aiohttp.ServerTimeoutError alike
            raise DeliveryError("timeout") from None
        except aiohttp.ClientConnectorError as exc:
            raise DeliveryError(_connect_failure(exc)) from None
        except aiohttp.InvalidURL:
            raise DeliveryError("invalid URL") from None
        except aiohttp.ClientError:  # the server went away mid-answer, a broken answer, ...
            raise DeliveryError("connection lost") from None
        except OSError as exc:
            raise DeliveryError(failure_class(exc)) from None
        if status in (408, 429) or status >= 500:
            raise DeliveryError(f"HTTP {status}", retryable=True, status=status,
                                retry_after=parse_retry_after(retry_after), response=text)
        raise DeliveryError(f"HTTP {status}", retryable=False, status=status, response=text)
