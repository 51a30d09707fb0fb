"""Immutable registry records as the distributor's cache holds them.

They are plain frozen dataclasses built once per cache load, so the hot path reads attributes
and never touches the database. Secrets held here (consumer signing secrets) are decrypted
in memory only; ``__repr__`` never shows them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Organization:
    id: str
    name: str


DEFAULT_RETENTION_DAYS = 30         # an application's history retention unless it says otherwise (migration 0010)


@dataclass(frozen=True, slots=True)
class Application:
    id: str
    organization_id: str
    name: str
    retention_days: int = DEFAULT_RETENTION_DAYS   # how long its messages are kept in the history (0: not kept)


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    application_id: str
    organization_id: str
    name: str
    kind: str                       # lorawan | nbiot | http | mqtt
    decoder: str | None
    dev_eui: str | None = None
    imei: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    lat: float | None = None
    lon: float | None = None
    # Copied from the organization and application when the cache loads (every change to either reloads
    # it), so each message names them without a lookup. The registry has names only, no slugs.
    organization_name: str = ""
    application_name: str = ""


@dataclass(frozen=True, slots=True)
class Consumer:
    id: str
    organization_id: str
    name: str
    kind: str                       # http | mqtt
    url: str
    format: str = "native"          # native | senml | raw
    secret: str | None = field(default=None, repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    qos: int = 1
    batch_size: int = 1             # HTTP: messages per request (1 = one message, not an array)
    batch_wait_ms: int = 0
    timeout_s: float = 10.0
    enabled: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    url_full: str | None = field(default=None, repr=False)   # the URL with credentials (url is masked), if any

    @property
    def target_url(self) -> str:
        """The URL to connect to: the whole one when its credentials are stored apart, else ``url``."""
        return self.url_full or self.url


@dataclass(frozen=True, slots=True)
class Subscription:
    """Ties a consumer to applications, devices, a decoder (device type) or tags; all set filters must match."""

    id: str
    consumer_id: str
    application_id: str | None = None
    device_ids: tuple[str, ...] = ()
    decoder: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    since: float = 0.0                 # created (epoch seconds): messages from about then on went out live
    live_from: float | None = None     # a backfill's seam: live only for messages received from then on

    @property
    def live_since(self) -> float:
        """From when on this subscription delivers live."""
        return self.live_from if self.live_from is not None else self.since

    def matches(self, device: Device) -> bool:
        if self.application_id is not None and device.application_id != self.application_id:
            return False
        if self.device_ids and device.id not in self.device_ids:
            return False
        if self.decoder is not None and device.decoder != self.decoder:
            return False
        return all(device.tags.get(k) == v for k, v in self.tags.items())


@dataclass(frozen=True, slots=True)
class JsDecoderRecord:
    """A JavaScript decoder as stored; the distributor compiles it once per version."""

    id: str
    organization_id: str | None     # None: shared with every organization
    dialect: str
    source: str = field(repr=False)
    timeout_ms: int = 100
    version: int = 1
    vendor: str = ""
    model: str = ""

    def usable_by(self, organization_id: str) -> bool:
        return self.organization_id is None or self.organization_id == organization_id


@dataclass(frozen=True, slots=True)
class IntegrationToken:
    """A token ChirpStack's HTTP integration sends (``Authorization: Bearer``); the cache keys it by SHA-256."""

    id: str
    name: str
    chirpstack_tenant_id: str | None = None    # None: events of any tenant; else only this tenant's
