"""The decoder contract: a decoder is data plus pure functions, bytes in, data out.

A decoder module declares::

    DEVICE: DeviceType                  # id, vendor, model, description, protocols, version
    MEASUREMENTS: tuple[str, ...]       # quantity names from decoders.vocabulary
    def decode(payload: bytes, fport: int | None) -> DecodeResult   # never raises, no I/O
    def normalize(data: dict) -> list[Measurement]                  # optional
    EXAMPLES: tuple[Example, ...]       # run by the test suite

When a module has no ``normalize``, top-level keys of ``data`` that are vocabulary names
become measurements with the vocabulary's unit (the preset).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from decoders.vocabulary import PHYSICAL, QUANTITIES, Quantity, quantity, typed

Value = float | int | bool | str


Row = list[Any]
"""A measurement as ``[name, unit, value]``, the shape a JavaScript worker answers with."""
NUMBER = (int, float)  # for isinstance on hot paths: `int | float` would build a union object on every call


class Measurement(NamedTuple):
    """One normalized reading: a vocabulary name, its SenML unit and the value.

    A named tuple, not a frozen dataclass: it is built for every reading of every message.
    """

    name: str
    unit: str
    value: Value

    def as_dict(self) -> dict[str, Value]:
        return {"name": self.name, "unit": self.unit, "value": self.value}


@dataclass(slots=True)
class DecodeResult:
    """What a decoder returns; a non-empty ``errors`` means the frame could not be decoded."""

    data: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True, slots=True)
class DeviceType:
    """What a decoder is for."""

    id: str
    vendor: str
    model: str
    description: str
    protocols: tuple[str, ...] = ("lorawan",)
    version: str = "1"


@dataclass(frozen=True, slots=True)
class Example:
    """A payload and what decoding it must give; the test suite checks every one.

    ``data`` is compared by equality; ``errors`` lists substrings that must each appear in
    one of the result's errors (empty for a good frame); ``measurements`` are optional
    (name, value) pairs that ``normalize`` must produce.
    """

    description: str
    payload_hex: str
    fport: int | None
    data: dict[str, Any] | None = None
    errors: tuple[str, ...] = ()
    measurements: tuple[tuple[str, Value], ...] = ()


def failure(message: str, data: dict[str, Any] | None = None) -> DecodeResult:
    """A result for a frame that could not be decoded."""
    return DecodeResult(data=data or {}, errors=[message])


def preset_measurements(data: Mapping[str, Any]) -> list[Measurement]:
    """Turn top-level vocabulary-named numeric keys of ``data`` into measurements."""
    return [Measurement(*row) for row in preset_rows(data)]


def preset_rows(data: Mapping[str, Any]) -> list[Row]:
    """:func:`preset_measurements` as ``[name, unit, value]`` rows: a JavaScript worker sends them on as they
    are, so no Measurement is built per reading."""
    return list(preset_into(data, {}).values())


def preset_into(data: Mapping[str, Any], out: dict[str, Row]) -> dict[str, Row]:
    """Add the preset rows of ``data`` to ``out`` (by name), one table lookup per key (:data:`PRESET_TABLE`)."""
    for key, value in data.items():
        entry = PRESET_TABLE.get(key)
        if entry is not None and isinstance(value, NUMBER):
            out[key] = [key, entry[0], float(value) if entry[1] else typed_value(False, value)]
    return out


def typed_value(physical: bool, value: float | int | bool) -> float | int:
    """``vocabulary.typed`` with the quantity's kind looked up once (tables keep ``physical`` per name)."""
    if physical:
        return float(value)
    if isinstance(value, bool) or (isinstance(value, float) and value.is_integer()):
        return int(value)
    return value


def measurement(name: str, value: float | int | bool) -> Measurement:
    """One measurement of a vocabulary quantity, its value of the quantity's kind (see ``vocabulary.typed``)."""
    q = _QUANTITY.get(name) or quantity(name)  # quantity() names an unknown quantity
    return Measurement(name, q.unit, typed(q, value))


def measurements_from(data: Mapping[str, Any], mapping: Mapping[str, tuple[str, float]]) -> list[Measurement]:
    """Map native keys to vocabulary names with a scale factor: ``{"vdd": ("battery_voltage", 0.001)}``.

    Walks ``data`` (a frame's few fields), not ``mapping`` (a vendor's many): this is on the hot path.
    Values take the quantity's kind: a float for a physical value, an int for a count or a state.
    """
    out: list[Measurement] = []
    for key, value in data.items():
        target = mapping.get(key)
        if target is None or not isinstance(value, NUMBER):
            continue
        name, scale = target
        q = _QUANTITY.get(name) or quantity(name)  # quantity() names an unknown quantity
        scaled = round(value * scale, 6) if scale != 1 and not isinstance(value, bool) else value
        out.append(Measurement(name, q.unit, typed(q, scaled)))
    return out


_QUANTITY: dict[str, Quantity] = dict(QUANTITIES)
PRESET_TABLE: dict[str, tuple[str, bool]] = {name: (q.unit, q.kind == PHYSICAL) for name, q in QUANTITIES.items()}
"""Vocabulary name -> (unit, whether its value is a float): what turning a key into a reading needs."""


DecodeFn = Callable[[bytes, "int | None"], DecodeResult]
NormalizeFn = Callable[[dict[str, Any]], list[Measurement]]
