"""Every example of every decoder, and the rules every decoder declaration must follow."""

from __future__ import annotations

import re

import pytest

from decoders import catalog
from decoders.catalog import Decoder
from decoders.contract import Example
from decoders.vocabulary import QUANTITIES

ALL = catalog.load_all()
CASES = [(dec, ex) for dec in ALL.values() for ex in dec.examples]


def test_the_devices_cities_deploy_are_all_present() -> None:
    required = {
        "elsys-ers", "elsys-ers-co2", "elsys-elt-2", "cayenne-lpp",
        "milesight-am103", "milesight-am307", "milesight-em300-th", "milesight-em310-udl", "milesight-em500-udl",
        "decentlab-dl-sht35", "decentlab-dl-mbx", "decentlab-dl-pr26",
        "dragino-lht65", "dragino-ldds75", "dragino-lsn50v2", "browan-tbhh100",
        "adeunis-temp", "adeunis-pulse-nbiot", "sensative-strips", "netvox-r718a", "digital-matter-oyster",
    }
    assert required <= set(ALL), required - set(ALL)
    device_types = {d for d in ALL if d not in ("elsys", "json")}   # the family and generic JSON don't count
    assert len(device_types) >= 25


@pytest.mark.parametrize(("decoder", "example"), CASES, ids=[f"{d.id}:{e.description}" for d, e in CASES])
def test_example(decoder: Decoder, example: Example) -> None:
    result = decoder.decode(bytes.fromhex(example.payload_hex), example.fport)
    if example.errors:
        assert result.errors, f"expected errors {example.errors}, got data {result.data}"
        for expected in example.errors:
            assert any(expected in err for err in result.errors), (expected, result.errors)
        return
    assert result.errors == [], result.errors
    if example.data is not None:
        assert result.data == example.data
    measurements, error = decoder.normalize(result.data)
    assert error is None
    got = {(m.name, m.value) for m in measurements}
    for pair in example.measurements:
        assert pair in got, (pair, got)
    for m in measurements:
        q = QUANTITIES[m.name]
        assert m.unit == q.unit, m
        if isinstance(m.value, int | float) and not isinstance(m.value, bool):
            assert q.minimum <= m.value <= q.maximum, f"{m} outside plausible range"


@pytest.mark.parametrize("decoder", list(ALL.values()), ids=list(ALL))
def test_declaration(decoder: Decoder) -> None:
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", decoder.id), decoder.id
    assert decoder.device.vendor and decoder.device.model and decoder.device.description
    assert set(decoder.device.protocols) <= {"lorawan", "nbiot", "http", "mqtt"}
    for name in decoder.measurements:
        assert name in QUANTITIES, f"{decoder.id} declares {name!r}, not in the vocabulary"
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name)
    good = [e for e in decoder.examples if not e.errors]
    bad = [e for e in decoder.examples if e.errors]
    assert good, f"{decoder.id} has no example of a good frame"
    assert bad, f"{decoder.id} has no example of an error case"


def test_a_raising_decoder_becomes_an_error_result() -> None:
    def explode(payload: bytes, fport: int | None) -> object:
        raise IndexError("boom")

    dec = Decoder(ALL["elsys"].device, (), (), explode, lambda d: [])  # type: ignore[arg-type]
    result = dec.decode(b"\x01", 1)
    assert result.errors and "IndexError" in result.errors[0]
