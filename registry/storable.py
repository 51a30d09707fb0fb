"""Values from outside made storable in PostgreSQL: no NUL, valid Unicode, bounded size.

Every string that came from a device, a ChirpStack event, a consumer's answer, a decoder or a
CSV cell passes through here before it reaches a ``text`` or ``jsonb`` column. PostgreSQL
refuses NUL in both (``text``: "invalid byte sequence", ``jsonb``: "unsupported Unicode escape
sequence"), and a Python ``str`` can hold lone surrogates that are not UTF-8 at all; one such row
in a batch would make the whole statement fail. The functions are pure and cheap when there is
nothing to fix (a ``in`` test and a length check), so they can sit on every write path.

Decisions: NUL and lone surrogates become U+FFFD (the Unicode replacement character), so the
reader sees that something was there; text longer than its limit is cut and ends in "…".
"""

from __future__ import annotations

from typing import Any

import orjson

REPLACEMENT = "\ufffd"
ELLIPSIS = "\u2026"
MAX_DEPTH = 64                  # JSON nesting kept; deeper values become the string "…"
ERROR_TEXT = 1000               # characters of an error message kept in the database
RESPONSE_TEXT = 256             # characters of a consumer's answer kept (dead letters show it to the tenant)
IDENTIFIER_TEXT = 200           # names and ids from outside (ChirpStack device names, tenant ids, ...)


def _valid_unicode(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: not representable in UTF-8
        return "".join(REPLACEMENT if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in value)
    return value


def text(value: object, limit: int = ERROR_TEXT) -> str:
    """``value`` as text PostgreSQL accepts, at most ``limit`` characters."""
    s = value if isinstance(value, str) else str(value)
    if "\x00" in s:
        s = s.replace("\x00", REPLACEMENT)
    if len(s) > limit:
        s = s[: max(0, limit - 1)] + ELLIPSIS
    return _valid_unicode(s)


def optional_text(value: object | None, limit: int = ERROR_TEXT) -> str | None:
    return None if value is None else text(value, limit)


def from_bytes(data: bytes, limit: int = RESPONSE_TEXT) -> str:
    """Bytes from outside (an HTTP answer, a payload field) as bounded text; invalid UTF-8 becomes U+FFFD."""
    return text(data[: limit * 4].decode("utf-8", errors="replace"), limit)


def json_value(value: Any, max_string: int | None = None, _depth: int = 0) -> Any:
    """A copy of a JSON-like value with every key and string made storable (and optionally bounded).

    Non-JSON leaves (bytes, dates, ...) are kept as they are: the encoder decides what to do with them.
    """
    if isinstance(value, str):
        return text(value, max_string) if max_string is not None else text(value, len(value) + 1)
    if _depth >= MAX_DEPTH and isinstance(value, dict | list | tuple):
        return ELLIPSIS
    if isinstance(value, dict):
        return {text(k, len(k) + 1) if isinstance(k, str) else k: json_value(v, max_string, _depth + 1)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v, max_string, _depth + 1) for v in value]
    return value


def needs_cleaning(encoded: bytes) -> bool:
    """Whether orjson output holds an escaped NUL, which ``jsonb`` refuses."""
    return b"\\u0000" in encoded


def json_bytes(value: Any) -> bytes:
    """orjson's encoding of ``value``, cleaned only when it has to be (NUL, lone surrogates)."""
    try:
        encoded = orjson.dumps(value)
    except orjson.JSONEncodeError:
        encoded = orjson.dumps(json_value(value))  # surrogates; anything else unencodable raises again
    if needs_cleaning(encoded):
        encoded = orjson.dumps(json_value(value))
    return encoded
