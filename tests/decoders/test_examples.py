"""Every example of every decoder, and the rules every decoder declaration must follow."""

from __future__ import annotations

import re

import pytest

from decoders import catalog
from decoders.catalog import Decoder
from decoders.contract import Example
from decoders.vocabulary import COUNT, PHYSICAL, QUANTITIES, STATE, Quantity

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
        assert_plausible(q, m.value)


def assert_plausible(q: Quantity, value: object) -> None:
    """In range and of the quantity's one kind: a state is exactly 0 or 1 (never a raw byte such as 17),
    a count an int, a physical value a float, whichever decoder reports it."""
    assert isinstance(value, int | float), f"{q.name}: {value!r} is not a number"
    assert q.minimum <= value <= q.maximum, f"{q.name} = {value!r} outside plausible range"
    if q.kind == STATE:
        assert type(value) is int and value in (0, 1), f"{q.name} = {value!r} is not the state 0 or 1"
    elif q.kind == COUNT:
        assert type(value) is int, f"{q.name} = {value!r} is a count: an int"
    else:
        assert q.kind == PHYSICAL and type(value) is float, f"{q.name} = {value!r} is physical: a float"


@pytest.mark.parametrize("value", [17, 192, 2, -1, 0.5, True])
def test_a_state_that_is_not_exactly_0_or_1_is_refused(value: object) -> None:
    with pytest.raises(AssertionError):
        assert_plausible(QUANTITIES["leak"], value)


@pytest.mark.parametrize(("name", "value"), [("humidity", 49), ("pulse_count", 3.0), ("door_open", 1.0)])
def test_a_value_of_the_wrong_numeric_kind_is_refused(name: str, value: object) -> None:
    with pytest.raises(AssertionError):
        assert_plausible(QUANTITIES[name], value)


def test_every_quantity_a_decoder_reports_has_one_numeric_type() -> None:
    """Across all decoders' examples, each quantity comes out as one Python type (issue 15: humidity was
    an int from Elsys and a float from Netvox)."""
    seen: dict[str, set[str]] = {}
    for decoder, example in CASES:
        result = decoder.decode(bytes.fromhex(example.payload_hex), example.fport)
        if not result.ok:
            continue
        for m in decoder.normalize(result.data)[0]:
            seen.setdefault(m.name, set()).add(type(m.value).__name__)
    mixed = {name: types for name, types in seen.items() if len(types) > 1}
    assert not mixed, mixed
    assert seen["humidity"] == {"float"} and seen["leak"] == {"int"} and seen["pulse_count"] == {"int"}


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
