"""Payload bytes from the hex people type (CLI, decoder trials): errors that say what is wrong.

``bytes.fromhex`` reports an odd number of digits as "non-hexadecimal number found in fromhex()
arg at position N", pointing past the end of the text; these messages name the real problem.
Spaces (and other whitespace) between digits are allowed, as in ``01 75 5c``; a ``0x`` prefix is
allowed too, since vendors' documents write frames that way.
"""

from __future__ import annotations

import string

_HEX_DIGITS = frozenset(string.hexdigits)
_SHOWN = 40   # characters of the input quoted in an error


def _quoted(text: str) -> str:
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "…")


def from_hex(text: str) -> bytes:
    """The bytes of a hex string; ValueError with a readable reason when it is not one."""
    digits = "".join(text.split())
    if digits[:2].lower() == "0x":
        digits = digits[2:]
    for position, char in enumerate(digits):
        if char not in _HEX_DIGITS:
            raise ValueError(f"hex payload has {char!r}, which is not a hex digit, at digit {position + 1}:"
                             f" {_quoted(text)}")
    if len(digits) % 2:
        raise ValueError(f"hex payload has an odd number of digits ({len(digits)}): {_quoted(text)};"
                         " every byte is two digits (a leading zero missing?)")
    return bytes.fromhex(digits)
