"""Every decoder survives arbitrary frames: its raw decode never raises and normalize keeps the vocabulary.

The catalog's ``Decoder.decode`` turns exceptions into errors, so these properties call the module's
own functions (``_decode`` / ``_normalize``) to find decoders that would rely on that safety net.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decoders import catalog
from decoders.catalog import Decoder
from decoders.contract import DecodeResult, Measurement
from decoders.vocabulary import QUANTITIES

ALL = catalog.load_all()

payloads = st.binary(min_size=0, max_size=64)
fports = st.none() | st.integers(min_value=0, max_value=255)


def _frames_from_examples(decoder: Decoder) -> st.SearchStrategy[tuple[bytes, int | None]]:
    """Mutated example frames reach deeper than random bytes: flip, cut and extend known-good payloads."""
    seeds = [(bytes.fromhex(e.payload_hex), e.fport) for e in decoder.examples if e.payload_hex]
    if not seeds:
        return st.tuples(payloads, fports)

    @st.composite
    def mutated(draw: st.DrawFn) -> tuple[bytes, int | None]:
        payload, fport = draw(st.sampled_from(seeds))
        frame = bytearray(payload)
        for _ in range(draw(st.integers(0, 3))):
            if frame:
                frame[draw(st.integers(0, len(frame) - 1))] = draw(st.integers(0, 255))
        frame = frame[: draw(st.integers(0, len(frame)))] if draw(st.booleans()) else frame
        return bytes(frame + draw(st.binary(max_size=4))), fport

    return mutated()


def _check(decoder: Decoder, payload: bytes, fport: int | None) -> None:
    result = decoder._decode(payload, fport)
    assert isinstance(result, DecodeResult), f"{decoder.id} returned {type(result).__name__}"
    assert all(isinstance(m, str) for m in (*result.errors, *result.warnings))
    if not result.ok:
        return
    measurements = decoder._normalize(result.data)
    for m in measurements:
        assert isinstance(m, Measurement)
        assert m.name in QUANTITIES, f"{decoder.id} produced {m.name!r}, not in the vocabulary"
        assert m.unit == QUANTITIES[m.name].unit, f"{decoder.id}: {m}"


FUZZ = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("decoder", list(ALL.values()), ids=list(ALL))
def test_random_frames_never_raise(decoder: Decoder) -> None:
    @FUZZ
    @given(payload=payloads, fport=fports)
    def run(payload: bytes, fport: int | None) -> None:
        _check(decoder, payload, fport)

    run()


@pytest.mark.parametrize("decoder", list(ALL.values()), ids=list(ALL))
def test_mutated_example_frames_never_raise(decoder: Decoder) -> None:
    @FUZZ
    @given(frame=_frames_from_examples(decoder))
    def run(frame: tuple[bytes, int | None]) -> None:
        _check(decoder, *frame)

    run()
