"""The two arguments OS2iot's ``decode(payload, metadata)`` decoders read, built from what we have.

``payload`` is the ChirpStack v4 ``UplinkEvent`` JSON with the v3 spellings that published decoders
still read added next to the v4 ones (``devEUI``, ``deviceName``, ``applicationID``,
``rxInfo[i].time``, ``rxInfo[i].gatewayID``, ``rxInfo[i].loRaSNR``), or, for generic HTTP devices, the
body they posted. ``metadata`` is shaped like OS2iot's device record, but only from an allow-list:
``id``, ``name``, ``type`` (OS2iot's ``LORAWAN``, ``GENERIC_HTTP``, ...), ``deviceEUI``, ``location``
(a GeoJSON Point), ``commentOnLocation``, ``metadata`` (a JSON *string*: decoders call ``JSON.parse`` on
it), ``deviceProfileName`` and, for a LoRaWAN device, ``lorawanSettings``.

``lorawanSettings`` follows OS2iot's ``enrichLoRaWANDevice`` (OS2iot/OS2iot-backend,
``chirpstack-device.service.ts``), which fills it from ChirpStack's device and its last device status
for every LoRaWAN device whose decoder mentions it: ``devEUI``, ``deviceProfileID``, ``isDisabled``,
``deviceStatusBattery`` (ChirpStack's battery level, a percentage) and ``deviceStatusMargin`` (the
link margin, dB), plus ``skipFCntCheck``/``activationType`` when the device record gives them. It is
always there for a LoRaWAN device, so ``metadata.lorawanSettings.deviceStatusBattery`` never throws;
a value we do not know is left out (undefined, as OS2iot gives it before the first status). The keys
OS2iot also puts there (``OTAAapplicationKey``, the session keys) never reach a decoder here, and
``isDisabled`` is false: ChirpStack drops a disabled device's uplinks, so a decoded one is enabled.

:func:`sample_uplink_event` and :data:`SAMPLE_DEVICE` stand in for a real event and device where
there is none (``iotd decode --js``, trials), so typical decoders that read ``rxInfo[0]`` can be tried.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any


def _first(source: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if source.get(key) is not None:
            return source[key]
    return None


def _v3_rx_info(entry: Any, event_time: Any) -> Any:
    if not isinstance(entry, Mapping):
        return entry
    out = dict(entry)
    out.setdefault("time", _first(entry, "gwTime", "nsTime") or event_time)
    if "gatewayId" in entry:
        out.setdefault("gatewayID", entry["gatewayId"])
    if "snr" in entry:
        out.setdefault("loRaSNR", entry["snr"])
    return out


def os2iot_payload(
    payload: bytes,
    fport: int | None,
    recv_time: datetime,
    event: Mapping[str, Any] | None = None,
    device: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The event a decoder receives: a copy of ``event`` (or one made from the frame) with v3 aliases."""
    if event is None:
        info: dict[str, Any] = {}
        if device is not None:
            for ours, theirs in (("dev_eui", "devEui"), ("deviceEUI", "devEui"), ("name", "deviceName")):
                if device.get(ours) is not None:
                    info.setdefault(theirs, device[ours])
        event = {"time": recv_time.isoformat(), "deviceInfo": info, "fPort": fport, "rxInfo": []}
    out = dict(event)
    chirpstack_shaped = "deviceInfo" in out or "rxInfo" in out or "fCnt" in out
    if chirpstack_shaped and "data" not in out:
        out["data"] = base64.b64encode(payload).decode()
    device_info = out.get("deviceInfo")
    if isinstance(device_info, Mapping):
        for v4, v3 in (
            ("devEui", "devEUI"),
            ("deviceName", "deviceName"),
            ("applicationId", "applicationID"),
            ("applicationName", "applicationName"),
        ):
            if device_info.get(v4) is not None:
                out.setdefault(v3, device_info[v4])
    rx_info = out.get("rxInfo")
    if isinstance(rx_info, list):
        out["rxInfo"] = [_v3_rx_info(entry, out.get("time")) for entry in rx_info]
    return out


SAMPLE_DEV_EUI = "0000000000000001"
SAMPLE_DEVICE: Mapping[str, Any] = {"name": "trial device", "type": "lorawan", "dev_eui": SAMPLE_DEV_EUI}
"""The device of a trial: a LoRaWAN device, so decoders get their ``lorawanSettings``."""


def sample_uplink_event(payload: bytes, fport: int | None, recv_time: datetime) -> dict[str, Any]:
    """A plausible ChirpStack v4 uplink event for ``payload``: one gateway in ``rxInfo`` (RSSI -80 dBm, SNR
    7.5 dB), EU868 at 868.1 MHz, SF7/125 kHz, frame counter 1; the names say it is a trial."""
    when = recv_time.isoformat().replace("+00:00", "Z")
    return {
        "deduplicationId": "00000000-0000-4000-8000-000000000001",
        "time": when,
        "deviceInfo": {
            "tenantId": "00000000-0000-4000-8000-000000000002", "tenantName": "trial",
            "applicationId": "00000000-0000-4000-8000-000000000003", "applicationName": "trial",
            "deviceProfileId": "00000000-0000-4000-8000-000000000004", "deviceProfileName": "trial profile",
            "deviceName": SAMPLE_DEVICE["name"], "devEui": SAMPLE_DEV_EUI, "deviceClassEnabled": "CLASS_A",
            "tags": {},
        },
        "devAddr": "01000001",
        "adr": True,
        "dr": 5,
        "fCnt": 1,
        "fPort": fport,
        "confirmed": False,
        "data": base64.b64encode(payload).decode(),
        "rxInfo": [{
            "gatewayId": "0000000000000001", "uplinkId": 1, "gwTime": when, "nsTime": when, "rssi": -80,
            "snr": 7.5, "channel": 0, "rfChain": 0, "context": "AAAAAQ==",
            "metadata": {"region_config_id": "eu868", "region_common_name": "EU868"}, "crcStatus": "CRC_OK",
        }],
        "txInfo": {"frequency": 868100000,
                   "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": 7, "codeRate": "CR_4_5"}}},
    }


OS2IOT_TYPES: Mapping[str, str] = {"lorawan": "LORAWAN", "http": "GENERIC_HTTP", "nbiot": "GENERIC_HTTP",
                                   "mqtt": "MQTT_EXTERNAL_BROKER"}
"""Our device kinds as OS2iot's ``IoTDeviceType`` (an NB-IoT device reaches OS2iot over generic HTTP)."""
LORAWAN_SETTINGS = ("devEUI", "deviceProfileID", "skipFCntCheck", "isDisabled", "deviceStatusBattery",
                    "deviceStatusMargin", "activationType")
"""What a decoder may see of OS2iot's ``lorawanSettings`` (never its keys)."""


def _geojson(location: Any) -> Any:
    if isinstance(location, Mapping) and "type" not in location and "lat" in location and "lon" in location:
        return {"type": "Point", "coordinates": [location["lon"], location["lat"]]}
    return location


def _device_info(event: Mapping[str, Any] | None) -> Mapping[str, Any]:
    info = event.get("deviceInfo") if isinstance(event, Mapping) else None
    return info if isinstance(info, Mapping) else {}


def _lorawan_settings(device: Mapping[str, Any], event: Mapping[str, Any] | None) -> dict[str, Any]:
    given = device.get("lorawanSettings")
    settings: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    info = _device_info(event)
    out: dict[str, Any] = {key: settings[key] for key in LORAWAN_SETTINGS if settings.get(key) is not None}
    for name, value in (
        ("devEUI", _first(device, "deviceEUI", "dev_eui")),
        ("deviceProfileID", _first(device, "device_profile_id") or info.get("deviceProfileId")),
        ("isDisabled", False),
        ("deviceStatusBattery", _first(device, "battery_level", "battery", "device_status_battery")),
        ("deviceStatusMargin", _first(device, "margin", "device_status_margin")),
    ):
        if value is not None:
            out.setdefault(name, value)
    return out


def os2iot_metadata(device: Mapping[str, Any] | None, event: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """OS2iot's device record for a decoder, from our snake_case or OS2iot's camelCase keys (and the
    ChirpStack event's ``deviceInfo`` for the device profile)."""
    device = device or {}
    meta: dict[str, Any] = {}
    for name, keys in (
        ("id", ("id",)),
        ("name", ("name",)),
        ("deviceEUI", ("deviceEUI", "dev_eui")),
        ("commentOnLocation", ("commentOnLocation", "comment_on_location")),
    ):
        value = _first(device, *keys)
        if value is not None:
            meta[name] = value
    location = _first(device, "location")
    meta["location"] = _geojson(location) if location is not None else None
    extra = _first(device, "metadata", "tags")
    meta["metadata"] = extra if isinstance(extra, str) else json.dumps(dict(extra or {}))
    kind = _first(device, "type", "kind")
    if kind is not None:
        meta["type"] = OS2IOT_TYPES.get(str(kind), str(kind))
    profile = _first(device, "deviceProfileName", "device_profile_name") or _device_info(event).get("deviceProfileName")
    if profile is not None:
        meta["deviceProfileName"] = profile
    lorawan = meta.get("type") == "LORAWAN" or (kind is None and (meta.get("deviceEUI") is not None or isinstance(
        device.get("lorawanSettings"), Mapping)))
    if lorawan:
        meta["lorawanSettings"] = _lorawan_settings(device, event)
    return meta
