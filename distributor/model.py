"""The common data model ``iotd.message/1``, as typed models.

The hot path builds these messages as plain dicts (``distributor.envelope``) and never
validates what it built itself; these models document the shape, give ``iotd schema`` its
JSON Schema (draft 2020-12, every field described), and let tests check that what the hot path
builds conforms.

Fields added after the first release (``organization_name``, ``application_name``) have defaults,
so messages stored before them (a device's last message in its state) still validate.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_ID = "iotd.message/1"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Location(_Strict):
    """Where the device is installed, as registered (WGS 84)."""

    lat: float = Field(ge=-90, le=90, description="latitude in degrees, WGS 84")
    lon: float = Field(ge=-180, le=180, description="longitude in degrees, WGS 84")


class DeviceRef(_Strict):
    """The registered device the message came from, with the organization and application it belongs to."""

    id: str = Field(description="the device's id in the registry (UUID)")
    name: str = Field(description="the device's name in the registry")
    organization: str = Field(description="the id (UUID) of the organization that owns the device")
    organization_name: str = Field("", description="that organization's name (the registry has no slugs)")
    application: str = Field(description="the id (UUID) of the device's application")
    application_name: str = Field("", description="that application's name, unique within its organization")
    type: str | None = Field(description="the device's decoder (device type) id; null when none is set")
    tags: dict[str, str] = Field({}, description="the device's tags, as registered")
    location: Location | None = Field(None, description="present when the device has a registered position")


class RadioReception(_Strict):
    """One gateway that heard a LoRaWAN uplink."""

    gateway: str = Field(description="the gateway's id (EUI-64, hex)")
    rssi: int | None = Field(None, description="received signal strength in dBm")
    snr: float | None = Field(None, description="signal-to-noise ratio in dB")


class Network(_Strict):
    """How the uplink travelled; the LoRaWAN fields are absent or null for other kinds."""

    kind: Literal["lorawan", "nbiot", "http", "mqtt"] = Field(description="the device's network kind")
    dev_eui: str | None = Field(None, description="LoRaWAN DevEUI, 16 lower-case hex digits")
    imei: str | None = Field(None, description="NB-IoT modem IMEI, when registered")
    f_cnt: int | None = Field(None, description="LoRaWAN uplink frame counter")
    f_port: int | None = Field(None, description="LoRaWAN fPort (or the port an HTTP device gave)")
    dedup_id: str | None = Field(None, description="ChirpStack's deduplication id of the uplink")
    dr: int | None = Field(None, description="LoRaWAN data rate index")
    frequency: int | None = Field(None, description="radio frequency in Hz")
    radio: list[RadioReception] = Field([], description="the gateways that heard the uplink")


class Payload(_Strict):
    """The bytes as sent, and what the decoder made of them."""

    raw: str = Field(description="the payload bytes, base64")
    decoded: dict[str, Any] | None = Field(description="the decoder's vendor-native object; null when not decoded")


class MeasurementModel(_Strict):
    """One reading, named from the shared vocabulary, so the same quantity has one name for every supplier."""

    name: str = Field(description="a name from the shared vocabulary (decoders/vocabulary.py)")
    unit: str = Field(description="SenML unit (RFC 8428 / RFC 8798)")
    value: float | int | bool | str = Field(description="the value in that unit; a state is a boolean")


class DecoderInfo(_Strict):
    """Which decoder ran and how it went; a failed decode still delivers the raw payload."""

    id: str | None = Field(description="the decoder's id; null when the device has none")
    version: str | None = Field(description="the decoder's version; null when it is not installed")
    status: Literal["ok", "error", "none"] = Field(
        description="ok: decoded; error: the decoder failed or is missing (see errors); none: no decoder set")
    warnings: list[str] = Field([], description="what the decoder skipped or doubted, the message still decoded")
    errors: list[str] = Field([], description="why the payload could not be decoded")


class Message(_Strict):
    """One decoded uplink, as every consumer in the ``native`` format receives it."""

    schema_: Literal["iotd.message/1"] = Field(alias="schema", description="the data model and its version")
    id: str = Field(description="deterministic per source message: a redelivery keeps its id")
    received_at: str = Field(description="when iotd received the uplink, RFC 3339 UTC with milliseconds")
    measured_at: str | None = Field(description="when the network (or device) says the reading was taken; "
                                                "RFC 3339; null when unknown")
    device: DeviceRef = Field(description="the registered device, its organization and application")
    network: Network = Field(description="how the uplink travelled")
    payload: Payload = Field(description="the bytes as sent, and the decoder's own object")
    measurements: list[MeasurementModel] = Field(description="the readings in the shared vocabulary")
    decoder: DecoderInfo = Field(description="which decoder ran and how it went")


def json_schema() -> dict[str, Any]:
    """The JSON Schema of ``iotd.message/1`` with its dialect (``$schema``) and id first."""
    body = Message.model_json_schema(by_alias=True)
    return {"$schema": JSON_SCHEMA_DIALECT, "$id": SCHEMA_ID, **body}
