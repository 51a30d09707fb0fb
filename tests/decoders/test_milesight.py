"""Milesight: a frame with a channel the model does not decode keeps its readings; states are 0/1, never raw bytes."""

from __future__ import annotations

import pytest

from decoders import catalog
from decoders.builtin._milesight_lengths import FIELD_LENGTHS
from decoders.catalog import Decoder

MILESIGHT = {d.id: d for d in catalog.load_all().values() if d.device.vendor == "Milesight"}


def _decoder(model: str) -> Decoder:
    return MILESIGHT[f"milesight-{model}"]


def _measured(model: str, payload_hex: str) -> dict[str, object]:
    dec = _decoder(model)
    result = dec.decode(bytes.fromhex(payload_hex), 85)
    assert result.ok, result.errors
    measurements, error = dec.normalize(result.data)
    assert error is None
    return {m.name: m.value for m in measurements}


def test_the_vendors_am307_example_keeps_the_readings_before_an_unknown_channel() -> None:
    result = _decoder("am307").decode(bytes.fromhex("01755c03673401046865056a4900"), 85)
    assert result.errors == []
    assert result.data == {"battery": 92, "temperature": 30.8, "humidity": 50.5}
    assert result.warnings == ["skipped channel 0x05 type 0x6a at byte 10 (a 2-byte field): not decoded for the AM307"]
    assert _measured("am307", "01755c03673401046865056a4900") == {"battery": 92, "temperature": 30.8, "humidity": 50.5}


def test_readings_after_a_skipped_channel_are_kept_too() -> None:
    frame = "01755C03673401046865056A490006651C0079001400077DE704087D070009733F27"   # the vendor's codec sample
    result = _decoder("am307").decode(bytes.fromhex(frame), 85)
    assert result.ok
    assert result.data["co2"] == 1255 and result.data["pressure"] == 1004.7
    assert [w.split(" at ")[0] for w in result.warnings] == ["skipped channel 0x05 type 0x6a",
                                                            "skipped channel 0x06 type 0x65"]


def test_a_channel_of_unknown_length_stops_the_walk_and_keeps_what_was_read() -> None:
    result = _decoder("em300-th").decode(bytes.fromhex("01755c 0e99 0102".replace(" ", "")), 85)
    assert result.data == {"battery": 92}
    assert result.errors == ["unknown channel 0x0e type 0x99 at byte 3: its length is not known,"
                             " 4 bytes left undecoded"]


def test_a_cut_off_skipped_field_is_an_error_not_a_short_read() -> None:
    result = _decoder("am103").decode(bytes.fromhex("017564 0382e8".replace(" ", "")), 85)
    assert result.data == {"battery": 100}
    assert result.errors == ["channel 0x03 type 0x82 at byte 3 needs 2 bytes, has 1"]


def test_the_length_table_agrees_with_the_fields_we_decode() -> None:
    """Pairs both the family table and our models know must have one length (the table is documentation facts)."""
    ours = {(0x01, 0x75): 1, (0x03, 0x82): 2, (0x04, 0x00): 1, (0x04, 0xCA): 2, (0x05, 0x7F): 2, (0x06, 0xCB): None,
            (0x08, 0x7D): 2, (0x08, 0xE6): 2, (0x09, 0x73): 2, (0x0E, 0x01): 1, (0x83, 0xD7): 5, (0xFF, 0x08): 6}
    for pair, size in ours.items():
        assert FIELD_LENGTHS.get(pair, size) == size, pair
    assert all(1 <= size <= 64 for size in FIELD_LENGTHS.values())


def test_ws301_undocumented_magnet_byte_is_open_not_192() -> None:
    result = _decoder("ws301").decode(bytes.fromhex("0300c0"), 85)
    assert result.data == {"magnet_status": 1}
    assert result.warnings == ["channel 0x03 type 0x00 at byte 0: magnet_status 0xc0 is not a documented value"
                               " (0 or 1), read as 1"]
    assert _measured("ws301", "0300c0") == {"door_open": 1}


STATE_CHANNELS = [
    ("ws301", "0300", "door_open"), ("ws301", "0400", None), ("ws202", "0300", "motion"), ("ws202", "0400", None),
    ("em300-sld", "0500", "leak"), ("am307", "0500", "motion"), ("am307", "0e01", None), ("em310-udl", "0400", None),
]


@pytest.mark.parametrize(("model", "head", "quantity"), STATE_CHANNELS)
def test_every_state_byte_gives_0_or_1(model: str, head: str, quantity: str | None) -> None:
    dec = _decoder(model)
    for raw in range(256):
        result = dec.decode(bytes.fromhex(head) + bytes([raw]), 85)
        assert result.ok
        (value,) = result.data.values()
        assert value == (1 if raw else 0), (model, raw, result.data)
        assert bool(result.warnings) == (raw > 1)
        if quantity is not None:
            measurements, _ = dec.normalize(result.data)
            assert [(m.name, m.value) for m in measurements] == [(quantity, value)]


def test_states_in_history_records_are_0_or_1() -> None:
    sld = _decoder("em300-sld").decode(bytes.fromhex("20ce9e74466310015d11"), 85)
    am307 = _decoder("am307").decode(bytes.fromhex("20ce00f15365e1005a0080032602780094 27".replace(" ", "")), 85)
    assert sld.data["history"][0]["leakage_status"] == 1 and sld.warnings
    assert am307.data["history"][0]["pir"] == 1 and am307.warnings


def test_am307_tvoc_and_light_are_measurements() -> None:
    measured = _measured("am307", "0367EE0004687C05000106CB02077DA803087D250009736627")   # the vendor's README sample
    assert measured["voc_index"] == 0.37       # IAQ level: the vendor reads uint16/100
    assert measured["light_level"] == 2
    assert {"voc_index", "light_level"} <= set(_decoder("am307").measurements)
