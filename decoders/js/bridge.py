"""A JsCodec as a :class:`decoders.catalog.Decoder`, so the pipeline treats it like a built-in decoder.

Uplink examples carry over as contract ``Example`` entries (hex payload, fPort, expected data or the
expected errors, which the contract matches as substrings); others have no contract equivalent.
Measurements come from the preset (vocabulary-named top-level keys); TTN ``normalizeUplink`` output
uses TTN's own names and is available separately through ``JsCodec.normalize``.
"""

from __future__ import annotations

from collections.abc import Iterable

from decoders.catalog import Decoder
from decoders.contract import DeviceType, Example, preset_measurements
from decoders.js.codec import JsCodec
from decoders.js.examples import CodecExample
from decoders.js.results import strings


def contract_examples(examples: Iterable[CodecExample]) -> tuple[Example, ...]:
    """The ``decodeUplink`` examples whose input is plain bytes, as contract examples."""
    out: list[Example] = []
    for example in examples:
        raw = example.input.get("bytes")
        if example.routine != "decodeUplink" or not isinstance(raw, list):
            continue
        if not all(isinstance(b, int) and 0 <= b < 256 for b in raw):
            continue
        fport = example.input.get("fPort")
        errors = tuple(strings(example.output.get("errors")))
        data = example.output.get("data")
        out.append(
            Example(
                description=example.description,
                payload_hex=bytes(raw).hex(),
                fport=fport if isinstance(fport, int) else None,
                data=dict(data) if isinstance(data, dict) and not errors else None,
                errors=errors,
            )
        )
    return tuple(out)


def as_decoder(
    codec: JsCodec,
    device: DeviceType,
    examples: Iterable[CodecExample] = (),
    measurements: tuple[str, ...] = (),
) -> Decoder:
    """A catalog Decoder whose ``decode`` is ``codec.decode`` (which never raises)."""
    return Decoder(device, measurements, contract_examples(examples), codec.decode, preset_measurements)
