"""TTN's normalized payload (``normalizeUplink``) mapped onto our vocabulary.

The Things Network defines a schema of nested quantities (``air.temperature`` in °C,
``air.relativeHumidity`` in %, ``soil.moisture`` in %, ...); codecs that define
``normalizeUplink`` answer in it. This table turns those paths into our names and units, so an
imported codec's readings become measurements without code. Unknown paths are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from decoders.contract import NUMBER, Measurement, measurement

# TTN path -> (our quantity, scale to our unit)
PATHS: dict[str, tuple[str, float]] = {
    "air.temperature": ("temperature", 1),
    "air.relativeHumidity": ("humidity", 1),
    "air.co2": ("co2", 1),
    "air.pressure": ("pressure", 1),
    "air.lightIntensity": ("illuminance", 1),
    "soil.temperature": ("soil_temperature", 1),
    "soil.moisture": ("soil_moisture", 1),
    "soil.ec": ("conductivity", 1000),          # dS/m -> uS/cm
    "soil.pH": ("ph", 1),
    "water.leak": ("leak", 1),
    "water.temperature": ("temperature_external", 1),
    "metering.water.total": ("water_volume", 0.001),   # liters -> m3
    "metering.electricity.total": ("energy", 1),
    "position.latitude": ("latitude", 1),
    "position.longitude": ("longitude", 1),
    "position.altitude": ("altitude", 1),
    "position.accuracy": ("position_accuracy", 1),
    "action.motion.detected": ("occupancy", 1),
    "action.motion.count": ("motion", 1),
    "action.contactState": ("door_open", 1),
    "wind.speed": ("wind_speed", 1),
    "sound.value": ("noise", 1),
}
_OPEN = {"OPEN": 1, "CLOSED": 0}


def _flatten(value: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            yield from _flatten(inner, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def measurements_from_normalized(items: Iterable[Mapping[str, Any]]) -> list[Measurement]:
    """Measurements for TTN-normalized objects (one per reading; the first value of a name wins)."""
    out: dict[str, Measurement] = {}
    for item in items:
        for path, value in _flatten(item):
            target = PATHS.get(path)
            if target is None or target[0] in out:
                continue
            name, scale = target
            if isinstance(value, str) and value.upper() in _OPEN:
                value = _OPEN[value.upper()]
            if isinstance(value, bool):
                value = int(value)
            if not isinstance(value, NUMBER):
                continue
            out[name] = measurement(name, round(value * scale, 6) if scale != 1 else value)   # the quantity's kind
    return list(out.values())
