"""The common data model ``iotd.message/1``, as typed models.

The hot path builds these messages as plain dicts (``distributor.envelope``) and never
validates what it built itself; these models document the shape, give ``iotd schema`` its
JSON Schema, and let tests check that what the hot path builds conforms.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_ID = "iotd.message/1"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Location(_Strict):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class DeviceRef(_Strict):
    id: str
    name: str
    organization: str = Field(description="organization id")
    application: str = Field(description="application id")
    type: str | None = Field(description="decoder / device type id")
    tags: dict[str, str] = {}
    location: Location | None = None


class RadioReception(_Strict):
    gateway: str
    rssi: int | None = None
    snr: float | None = None


class Network(_Strict):
    kind: Literal["lorawan", "nbiot", "http", "mqtt"]
    dev_eui: str | None = None
    imei: str | None = None
    f_cnt: int | None = None
    f_port: int | None = None
    dedup_id: str | None = None
    dr: int | None = None
    frequency: int | None = None
    radio: list[RadioReception] = []


class Payload(_Strict):
    raw: str = Field(description="the payload bytes, base64")
    decoded: dict[str, Any] | None = Field(description="the decoder's vendor-native object")


class MeasurementModel(_Strict):
    name: str = Field(description="a name from the shared vocabulary (decoders/vocabulary.py)")
    unit: str = Field(description="SenML unit (RFC 8428 / RFC 8798)")
    value: float | int | bool | str


class DecoderInfo(_Strict):
    id: str | None
    version: str | None
    status: Literal["ok", "error", "none"]
    warnings: list[str] = []
    errors: list[str] = []


class Message(_Strict):
    """One decoded uplink, as every consumer in the ``native`` format receives it."""

    schema_: Literal["iotd.message/1"] = Field(alias="schema")
    id: str = Field(description="deterministic per source message: a redelivery keeps its id")
    received_at: str
    measured_at: str | None
    device: DeviceRef
    network: Network
    payload: Payload
    measurements: list[MeasurementModel]
    decoder: DecoderInfo


def json_schema() -> dict[str, Any]:
    schema = Message.model_json_schema(by_alias=True)
    schema["$id"] = SCHEMA_ID
    return schema
