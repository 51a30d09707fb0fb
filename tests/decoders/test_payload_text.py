"""Hex payloads as people type them (issue 15): an odd number of digits is said in those words."""

from __future__ import annotations

import pytest

from decoders.payload_text import from_hex
from distributor.cli import main


@pytest.mark.parametrize(("text", "expected"), [
    ("01755c", b"\x01\x75\x5c"),
    ("01 75 5C", b"\x01\x75\x5c"),
    ("0x0300c0", b"\x03\x00\xc0"),
    (" 01\t75\n", b"\x01\x75"),
    ("", b""),
])
def test_hex_that_is_hex(text: str, expected: bytes) -> None:
    assert from_hex(text) == expected


@pytest.mark.parametrize(("text", "reason"), [
    ("0101170", "hex payload has an odd number of digits (7): '0101170'"),
    ("01 75 5", "hex payload has an odd number of digits (5): '01 75 5'"),
    ("01zz", "hex payload has 'z', which is not a hex digit, at digit 3: '01zz'"),
    ("0" * 99, "hex payload has an odd number of digits (99): '" + "0" * 40 + "…'"),
])
def test_hex_errors_say_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        from_hex(text)
    assert str(caught.value).startswith(reason)


def test_iotd_decode_says_the_hex_has_an_odd_number_of_digits() -> None:
    with pytest.raises(SystemExit) as caught:
        main(["decode", "--decoder", "elsys", "--hex", "0101170"])
    assert str(caught.value).startswith("iotd decode: hex payload has an odd number of digits (7): '0101170'")
    assert "fromhex" not in str(caught.value)
