"""What makes a device record valid, as pure functions shared by the API, CSV import and the CLI.

Each check returns the cleaned value or raises ``RegistryError`` with a message a person can
act on ("imei must be 15 digits with a valid check digit, got ...").
"""

from __future__ import annotations

import re
from typing import Any

from registry.store import RegistryError, normalize_eui

KINDS = ("lorawan", "nbiot", "http", "mqtt")
KEYED_KINDS = ("nbiot", "http", "mqtt")        # devices that push to /ingest/http with their own key
_HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")
_DIGITS = re.compile(r"^[0-9]+$")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def clean_imei(value: str) -> str:
    imei = value.replace(" ", "").replace("-", "")
    if len(imei) != 15 or not _DIGITS.match(imei) or not luhn_ok(imei):
        raise RegistryError(f"imei must be 15 digits with a valid check digit, got {value!r}")
    return imei


def clean_imsi(value: str) -> str:
    imsi = value.strip()
    if not (6 <= len(imsi) <= 15) or not _DIGITS.match(imsi):
        raise RegistryError(f"imsi must be 6 to 15 digits, got {value!r}")
    return imsi


def clean_app_key(value: str) -> str:
    key = value.replace(" ", "").replace(":", "")
    if not _HEX32.match(key):
        raise RegistryError("app_key must be 32 hex characters")
    return key.lower()


def clean_location(lat: float | None, lon: float | None) -> tuple[float | None, float | None]:
    if (lat is None) != (lon is None):
        raise RegistryError("give both lat and lon, or neither")
    if lat is not None and not -90 <= lat <= 90:
        raise RegistryError(f"lat must be between -90 and 90, got {lat}")
    if lon is not None and not -180 <= lon <= 180:
        raise RegistryError(f"lon must be between -180 and 180, got {lon}")
    return lat, lon


def clean_device(fields: dict[str, Any]) -> dict[str, Any]:
    """Validate and normalize a whole device (create, or the merged result of an update)."""
    out = dict(fields)
    kind = out.get("kind")
    if kind not in KINDS:
        raise RegistryError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if not str(out.get("name") or "").strip():
        raise RegistryError("name must not be empty")
    for key, clean in (("dev_eui", normalize_eui), ("join_eui", lambda v: normalize_eui(v, "join_eui")),
                       ("imei", clean_imei), ("imsi", clean_imsi), ("app_key", clean_app_key)):
        if out.get(key):
            out[key] = clean(str(out[key]))
        elif key in out:
            out[key] = None
    if kind == "lorawan" and not out.get("dev_eui"):
        raise RegistryError("a lorawan device needs a dev_eui (16 hex characters)")
    if kind == "nbiot" and not out.get("imei"):
        raise RegistryError("an nbiot device needs an imei (15 digits)")
    if kind != "lorawan":
        for key in ("dev_eui", "join_eui", "app_key"):
            if out.get(key):
                raise RegistryError(f"{key} is only for lorawan devices")
    out["lat"], out["lon"] = clean_location(out.get("lat"), out.get("lon"))
    tags = out.get("tags") or {}
    if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise RegistryError("tags must be an object of text keys and text values")
    return out
