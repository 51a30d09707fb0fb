"""The uplink a source hands the pipeline: a ``RawUplink`` carrying its own ``Finalizer``.

It lives beside the pipeline, not in ``sources``: data flows sources -> pipeline, and the pipeline
only knows what it is fed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from distributor.ack import Finalizer
from registry.records import Device


@dataclass(slots=True)
class RawUplink:
    source: str                       # chirpstack-mqtt | chirpstack-http | http
    dedup_key: str                    # the source's own key (ChirpStack deduplicationId, Idempotency-Key)
    payload: bytes
    fport: int | None
    received_at: float                # epoch seconds
    measured_at: str | None           # RFC 3339, when the source knows it
    network: dict[str, Any]           # the envelope's `network` object
    finalizer: Finalizer
    dev_eui: str | None = None        # for LoRaWAN: resolved through the registry cache
    device: Device | None = None      # already resolved (device HTTP ingest with its key)
    frame_key: tuple[str, int, int, str] | None = None   # (dev_eui, fCnt, fPort, payload hex): windowed dedup
    raw_event: dict[str, Any] | None = None          # the source event as received (`raw` format)
    unknown_detail: dict[str, Any] = field(default_factory=dict)
    tenant_id: str | None = None                      # ChirpStack tenant and application it came through:
    application_id: str | None = None                 # the organization mapped to them owns it (registry.tenancy)
    id_key: str | None = None         # what the message id derives from when not the dedup_key (LoRaWAN: the frame)

    @property
    def message_key(self) -> str:
        """The key the message id derives from (``distributor.envelope.message_id``)."""
        return self.id_key or self.dedup_key
