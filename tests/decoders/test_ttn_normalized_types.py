"""A JavaScript codec's normalized output gets the same value types as the built-ins (issue 15, item 12):
humidity 49 from a codec is 49.0, a door state from a boolean is 0/1, a count stays an integer."""

from __future__ import annotations

from decoders.ttn_normalized import measurements_from_normalized


def test_each_quantity_has_the_built_ins_type() -> None:
    got = {m.name: m.value for m in measurements_from_normalized(
        [{"air": {"temperature": 21, "relativeHumidity": 49}, "action": {"contactState": "OPEN"}}])}
    assert got["humidity"] == 49.0 and isinstance(got["humidity"], float)
    assert got["temperature"] == 21.0 and isinstance(got["temperature"], float)
    assert got["door_open"] == 1 and isinstance(got["door_open"], int)
