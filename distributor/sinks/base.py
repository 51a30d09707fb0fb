"""The sink contract: send one batch of already-rendered messages, or raise DeliveryError.

Exceptions::

    DeliveryError            the consumer did not take the batch
      .retryable             False for a permanent refusal (e.g. HTTP 400): dead-letter at once
      .status                protocol status (HTTP code), when there was one
      .retry_after           seconds the consumer asked us to wait (HTTP Retry-After)
      .response              the start of the consumer's answer, for the dead letter

``detail`` and ``response`` come from outside (a consumer's answer, an OS error) and are stored:
the constructor makes them storable and short (``registry.storable``), so no sink can hand the
spill store or the retry worker a value PostgreSQL refuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from registry import storable

REPLAY = "replay"   # ``topic_vars`` key of a re-delivered message: its replay job's id (kept through retries)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One rendered message: its id (for signatures and logs), the MQTT topic and body bytes."""

    message_id: str
    body: bytes
    topic_vars: dict[str, str]


class DeliveryError(Exception):
    def __init__(self, detail: str, *, retryable: bool = True, status: int | None = None,
                 retry_after: float | None = None, response: str | None = None) -> None:
        detail = storable.text(detail, storable.ERROR_TEXT)
        super().__init__(detail)
        self.detail = detail
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after
        self.response = storable.optional_text(response, storable.RESPONSE_TEXT)


class Sink(Protocol):
    """A connection to one consumer. ``send`` returns once the consumer has the whole batch."""

    async def start(self) -> None: ...

    async def send(self, batch: list[Outgoing]) -> None: ...

    async def close(self) -> None: ...
