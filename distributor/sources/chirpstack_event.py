"""A ChirpStack v4 integration event, reduced to what the pipeline needs.

``distributor.sources.chirpstack_parse`` builds these from either marshaler (JSON or
protobuf); the MQTT source and the HTTP integration endpoint share them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class GatewayReception:
    gateway: str
    rssi: int | None
    snr: float | None


@dataclass(slots=True)
class ChirpStackEvent:
    """One ChirpStack event of any kind (``up``, ``join``, ``status``, ``log``, ...)."""

    event: str                      # up, join, status, log, ack, txack, location, integration
    dev_eui: str                    # lowercase hex, 16 characters
    tenant_id: str = ""
    application_id: str = ""
    device_name: str = ""
    device_profile_name: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    time: str | None = None         # RFC 3339 as ChirpStack gave it
    # up
    dedup_id: str | None = None
    f_cnt: int | None = None
    f_port: int | None = None
    data: bytes = b""
    dr: int | None = None
    frequency: int | None = None
    confirmed: bool = False
    object: dict[str, Any] | None = None   # ChirpStack's own codec output, if it ran
    rx: list[GatewayReception] = field(default_factory=list)
    # status
    battery_level: float | None = None
    margin: int | None = None
    external_power_source: bool | None = None
    # log
    level: str | None = None
    code: str | None = None
    description: str | None = None
    # join
    dev_addr: str | None = None
    # the event as received, in the protobuf JSON mapping (for the `raw` format and JS decoders)
    raw: dict[str, Any] = field(default_factory=dict)


class EventParseError(ValueError):
    """The bytes are not a ChirpStack event we can use; the message says why."""
