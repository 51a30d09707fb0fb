"""Finds decoders (built-in modules and third-party entry points) and makes them safe to call.

Third-party packages register modules in the ``iotd.decoders`` entry-point group; each module
follows ``decoders.contract``. ``Decoder.decode`` never raises: an exception inside a decoder
becomes an error in the result, so a bad frame or a buggy decoder never drops a message.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

import decoders.builtin
from decoders.contract import (
    DecodeFn,
    DecodeResult,
    DeviceType,
    Example,
    Measurement,
    NormalizeFn,
    preset_measurements,
)

ENTRY_POINT_GROUP = "iotd.decoders"


@dataclass(frozen=True, slots=True)
class Decoder:
    """A loaded decoder: its declaration plus exception-proof decode and normalize."""

    device: DeviceType
    measurements: tuple[str, ...]
    examples: tuple[Example, ...]
    _decode: DecodeFn
    _normalize: NormalizeFn

    @property
    def id(self) -> str:
        return self.device.id

    def decode(self, payload: bytes, fport: int | None) -> DecodeResult:
        try:
            result = self._decode(payload, fport)
        except Exception as exc:  # a decoder bug must not drop the message
            return DecodeResult(errors=[f"decoder raised {type(exc).__name__}: {exc}"])
        if not isinstance(result, DecodeResult):
            return DecodeResult(errors=[f"decoder returned {type(result).__name__}, not DecodeResult"])
        return result

    def normalize(self, data: dict[str, Any]) -> tuple[list[Measurement], str | None]:
        """Measurements for decoded data, and an error message if normalizing failed."""
        try:
            return self._normalize(data), None
        except Exception as exc:
            return [], f"normalize raised {type(exc).__name__}: {exc}"

    def measure(self, result: DecodeResult) -> list[Measurement]:
        """The measurements of whatever was decoded, a frame that failed part-way included.

        Decoders walk a frame field by field and stop at the first field they cannot read (an unknown
        type of unknown length, a cut-off value): what they read before it is real data and is
        delivered, with the result's errors saying where the walk stopped (``decoder.status`` stays
        "error"). A normalize failure is added to the result's errors."""
        if not result.data:
            return []
        measurements, error = self.normalize(result.data)
        if error is not None:
            result.errors.append(error)
        return measurements


def decoder_from_module(module: ModuleType) -> Decoder:
    """Build a Decoder from a module that follows the contract; ValueError says what is missing."""
    missing = [name for name in ("DEVICE", "decode") if not hasattr(module, name)]
    if missing:
        raise ValueError(f"decoder module {module.__name__} lacks {', '.join(missing)}")
    return Decoder(
        device=module.DEVICE,
        measurements=tuple(getattr(module, "MEASUREMENTS", ())),
        examples=tuple(getattr(module, "EXAMPLES", ())),
        _decode=module.decode,
        _normalize=getattr(module, "normalize", preset_measurements),
    )


def _builtin_modules() -> Iterable[ModuleType]:
    for info in sorted(pkgutil.iter_modules(decoders.builtin.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            yield importlib.import_module(f"decoders.builtin.{info.name}")


def _plugin_modules() -> Iterable[ModuleType]:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        loaded = ep.load()
        if isinstance(loaded, ModuleType):
            yield loaded


@cache
def load_all() -> dict[str, Decoder]:
    """Every decoder by id; a duplicate id is an error that names both."""
    found: dict[str, Decoder] = {}
    for module in (*_builtin_modules(), *_plugin_modules()):
        for dec in _decoders_of(module):
            if dec.id in found:
                raise ValueError(f"decoder id {dec.id!r} is declared twice ({module.__name__})")
            found[dec.id] = dec
    return found


def _decoders_of(module: ModuleType) -> list[Decoder]:
    """A module declares one decoder, or several through ``DECODERS`` (a vendor family)."""
    family = getattr(module, "DECODERS", None)
    if family is not None:
        return list(family)
    return [decoder_from_module(module)]


def get(decoder_id: str) -> Decoder | None:
    return load_all().get(decoder_id)
