"""The two arguments OS2iot's ``decode(payload, metadata)`` decoders read, built from what we have.

``payload`` is the ChirpStack v4 ``UplinkEvent`` JSON with the v3 spellings that published decoders
still read added next to the v4 ones (``devEUI``, ``deviceName``, ``applicationID``,
``rxInfo[i].time``, ``rxInfo[i].gatewayID``, ``rxInfo[i].loRaSNR``), or, for generic HTTP devices, the
body they posted. ``metadata`` is shaped like OS2iot's device record, but only from an allow-list:
``id``, ``name``, ``type``, ``deviceEUI``, ``location`` (a GeoJSON Point), ``commentOnLocation``,
``metadata`` (a JSON *string*: decoders call ``JSON.parse`` on it) and
``lorawanSettings.deviceStatusBattery``/``deviceStatusMargin``. Keys, contacts and anything else in
the device mapping never reach a decoder.
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


def _geojson(location: Any) -> Any:
    if isinstance(location, Mapping) and "type" not in location and "lat" in location and "lon" in location:
        return {"type": "Point", "coordinates": [location["lon"], location["lat"]]}
    return location


def os2iot_metadata(device: Mapping[str, Any] | None) -> dict[str, Any]:
    """OS2iot's device record for a decoder, from our snake_case or OS2iot's camelCase keys."""
    device = device or {}
    meta: dict[str, Any] = {}
    for name, keys in (
        ("id", ("id",)),
        ("name", ("name",)),
        ("type", ("type",)),
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
    given = device.get("lorawanSettings")
    settings: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    battery = _first(settings, "deviceStatusBattery")
    battery = battery if battery is not None else _first(device, "battery", "device_status_battery")
    margin = _first(settings, "deviceStatusMargin")
    margin = margin if margin is not None else _first(device, "margin", "device_status_margin")
    if battery is not None or margin is not None:
        meta["lorawanSettings"] = {"deviceStatusBattery": battery, "deviceStatusMargin": margin}
    return meta
