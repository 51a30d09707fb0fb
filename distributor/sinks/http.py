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
``X-Iotd-Message-Count`` always says how many messages the request holds. ``X-Iotd-Replay: <job id>``
marks messages re-delivered by a replay, backfill or reprocess job (``distributor.replay``): a receiver
that de-duplicates by id should let such a message replace the copy it has. Delivery is at least
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

The requests go through ``distributor.sinks.http_wire``, a lean HTTP/1.1 client made for this one
job (twice aiohttp's client's rate here; its docstring says what it does and does not do).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from email.utils import parsedate_to_datetime

from yarl import URL

from distributor.formats import join_batch
from distributor.sinks.base import REPLAY, DeliveryError, Outgoing
from distributor.sinks.guard import failure_class
from distributor.sinks.http_wire import ConnectionLost, ProtocolError, WirePool
from registry import storable
from registry.records import Consumer
from registry.targets import TargetPolicy, TargetRefused

USER_AGENT = "iotd/0.1"
CONNECTIONS_PER_SINK = 64
_RESPONSE_KEEP = storable.RESPONSE_TEXT   # bytes of an error answer read and kept for the dead letter
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
    if value.isascii() and value.isdigit():   # "²" is a digit to str.isdigit() and not to float()
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


class HttpSink:
    """POSTs to one consumer over keep-alive connections (up to 64; ``http_wire``)."""

    def __init__(self, consumer: Consumer, *, policy: TargetPolicy) -> None:
        self._consumer = consumer
        content_type = "application/senml+json" if consumer.format == "senml" else "application/json"
        url, self._headers = target_and_headers(
            consumer.target_url, {"Content-Type": content_type, "User-Agent": USER_AGENT, "Accept": "*/*",
                                   **consumer.headers})
        # a bad URL or header is a ValueError here, so the consumer gets a sink that says so (service.py)
        self._pool = WirePool(url, self._headers, policy, limit=CONNECTIONS_PER_SINK)
        self._started = False
        self._single = consumer.batch_size <= 1

    async def start(self) -> None:
        self._started = True

    async def close(self) -> None:
        self._started = False
        await self._pool.close()

    def _request(self, batch: list[Outgoing]) -> tuple[bytes, dict[str, str]]:
        if len(batch) == 1 and self._single:
            body = batch[0].body
        else:
            body = join_batch(self._consumer.format, [o.body for o in batch])
        headers: dict[str, str] = {}
        ids = ",".join(o.message_id for o in batch)
        if len(ids) <= MESSAGE_ID_HEADER_MAX:
            headers["X-Iotd-Message-Id"] = ids
        headers["X-Iotd-Message-Count"] = str(len(batch))
        replay = batch[0].topic_vars.get(REPLAY)
        if replay:   # the retry worker and the replay job send a replay's messages in batches of their own
            headers["X-Iotd-Replay"] = replay
        if self._consumer.secret:
            ts = int(time.time())
            headers["X-Iotd-Timestamp"] = str(ts)
            headers["X-Iotd-Signature"] = sign(self._consumer.secret, ts, body)
        return body, headers

    async def send(self, batch: list[Outgoing]) -> None:
        if not batch:
            return
        if not self._started:
            raise DeliveryError("sink not started")
        body, headers = self._request(batch)
        try:
            async with asyncio.timeout(self._consumer.timeout_s):
                answer = await self._pool.post(body, headers, _RESPONSE_KEEP)
        except TimeoutError:
            raise DeliveryError("timeout") from None
        except (ProtocolError, ConnectionLost):   # the server went away mid-answer, a broken answer, ...
            raise DeliveryError("connection lost") from None
        except (OSError, TargetRefused) as exc:
            raise DeliveryError(failure_class(exc)) from None
        except ValueError:   # a message id that cannot be a header value (ids are ours: never in practice)
            raise DeliveryError("invalid request", retryable=False) from None
        status = answer.status
        if 200 <= status < 300:
            return
        text = storable.from_bytes(answer.body, storable.RESPONSE_TEXT)
        if status in (408, 429) or status >= 500:
            raise DeliveryError(f"HTTP {status}", retryable=True, status=status,
                                retry_after=parse_retry_after(answer.headers.get("retry-after")), response=text)
        raise DeliveryError(f"HTTP {status}", retryable=False, status=status, response=text)
