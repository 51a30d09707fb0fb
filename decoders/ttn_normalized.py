"""TTN's normalized payload (``normalizeUplink``) mapped onto our vocabulary.

The Things Network defines a schema of nested quantities (``air.temperature`` in °C,
``air.relativeHumidity`` in %, ``soil.moisture`` in %, ...); codecs that define
``normalizeUplink`` answer in it. This table turns those paths into our names and units, so an
imported codec's readings become measurements without code. Unknown paths are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from decoders.contract import NUMBER, PRESET_TABLE, Measurement, Row, typed_value

# TTN path -> (our quantity, scale to our unit)
PATHS: dict[str, tuple[str, float]] = {
    "air.temperature": ("temperature", 1),
    "air.relativeHumidity": ("humidity", 1),
    "air.co2": ("co2", 1),
    "air.pressure": ("pressure", 1),
    "air.lightIntensity": ("illuminance", 1),
    "soil.temperature": ("soil_temperature", 1),
    "soil.moisture": ("soil_moisture", 1),
    "soil.ec": ("conductivity", 1000),  # dS/m -> uS/cm
    "soil.pH": ("ph", 1),
    "water.leak": ("leak", 1),
    "water.temperature": ("temperature_external", 1),
    "metering.water.total": ("water_volume", 0.001),  # liters -> m3
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


_TARGETS: dict[str, tuple[str, float, str, bool]] = {
    path: (name, scale, *PRESET_TABLE[name]) for path, (name, scale) in PATHS.items()
}
"""TTN path -> (our name, scale, unit, whether the value is a float): one lookup per reading."""
_BRANCHES = frozenset(path.rsplit(".", i)[0] for path in PATHS for i in range(1, path.count(".") + 1))
"""The paths a reading can lie under (``air``, ``metering.water``, ...): no other subtree is walked."""


_SCALARS = frozenset({int, float, str, bool, list, type(None)})
"""What JSON values are besides objects: a value of these types is known not to be a Mapping without asking
the ABC (an ``isinstance(x, Mapping)`` per leaf is slow on a worker's hot path)."""


def _is_mapping(value: Any) -> bool:
    kind = type(value)
    return kind is dict or (kind not in _SCALARS and isinstance(value, Mapping))


def _walk(value: Mapping[Any, Any], prefix: str, out: dict[str, Row]) -> None:
    """Each leaf whose path is in :data:`PATHS`, in document order; paths are built as ``a.b.c`` from the keys
    (a key holding a dot counts as two levels, as TTN's flattening does) and the first reading of a name wins."""
    for key, inner in value.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        kind = type(inner)
        if kind is dict or (kind not in _SCALARS and isinstance(inner, Mapping)):  # _is_mapping, inlined
            if not path or path in _BRANCHES:
                _walk(inner, path, out)
            continue
        target = _TARGETS.get(path)
        if target is None or target[0] in out:
            continue
        name, scale, unit, physical = target
        if isinstance(inner, str) and inner.upper() in _OPEN:
            inner = _OPEN[inner.upper()]
        if isinstance(inner, bool):
            inner = int(inner)
        if not isinstance(inner, NUMBER):
            continue
        out[name] = [name, unit, typed_value(physical, round(inner * scale, 6) if scale != 1 else inner)]


def normalized_rows(items: Iterable[Mapping[str, Any]]) -> list[Row]:
    """:func:`measurements_from_normalized` as ``[name, unit, value]`` rows (what a worker answers with)."""
    return list(normalized_into(items, {}).values())


def normalized_into(items: Iterable[Mapping[str, Any]], out: dict[str, Row]) -> dict[str, Row]:
    """Add the readings of ``items`` to ``out`` (by name), each name only once: a name already in ``out`` (a
    reading of the decoded data itself, or an earlier one here) keeps its value."""
    for item in items:
        if _is_mapping(item):
            _walk(item, "", out)
    return out


def measurements_from_normalized(items: Iterable[Mapping[str, Any]]) -> list[Measurement]:
    """Measurements for TTN-normalized objects (one per reading; the first value of a name wins)."""
    return [Measurement(*row) for row in normalized_rows(items)]
