"""Device HTTP ingest (NB-IoT modules, gateways, generic devices): who is sending, and what bytes.

Pure functions; the endpoint in ``distributor.http_app`` does the I/O. Decisions:

* The device authenticates with its ingest key: ``Authorization: ApiKey <key>``,
  ``X-API-Key: <key>``, or ``?apiKey=<key>`` for modules that can only set a URL. The key is
  looked up by its SHA-256 in the registry cache (no database round trip) and never logged.
* The body: ``application/octet-stream`` is the payload itself; ``text/plain`` is hex or
  base64 text; JSON is either an envelope ``{"data": "<base64>"}`` / ``{"hex": "..."}`` (with
  optional ``fPort``), or any other JSON document, which is the payload as it is (a
  device with the ``json`` decoder turns its vocabulary-named fields into measurements).
* An ``Idempotency-Key`` (or ``X-Message-Id``) header makes the message id deterministic, so a
  device that resends after a lost answer is recognised as a duplicate. Without one, every
  request is a new message.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

_HEX = re.compile(r"^(?:[0-9a-fA-F]{2})+$")
MAX_BODY = 256 * 1024


class IngestError(ValueError):
    """The request cannot become a message; the text says why (answered as 4xx)."""


@dataclass(frozen=True, slots=True)
class IngestBody:
    payload: bytes
    fport: int | None


def ingest_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "apikey" and value.strip():
        return value.strip()
    return headers.get("x-api-key") or query.get("apiKey") or None


def _hex(text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise IngestError("hex must be pairs of hex digits") from None


def _base64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise IngestError("data must be base64") from None


def text_payload(text: str) -> bytes:
    """Hex when it is hex, else base64; IngestError when it is neither."""
    cleaned = "".join(text.split())
    if _HEX.match(cleaned):
        return bytes.fromhex(cleaned)
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        raise IngestError("a text body must be hex or base64") from None


def parse_body(body: bytes, content_type: str | None, fport: int | None = None) -> IngestBody:
    if len(body) > MAX_BODY:
        raise IngestError(f"the body is larger than {MAX_BODY} bytes")
    media = (content_type or "application/octet-stream").split(";")[0].strip().lower()
    if media == "text/plain":
        return IngestBody(text_payload(body.decode("utf-8", "replace")), fport)
    if media == "application/json" or media.endswith("+json"):
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise IngestError(f"the body is not valid JSON: {exc}") from None
        if isinstance(doc, dict) and set(doc) <= {"data", "hex", "fPort", "fport"} and ("data" in doc or "hex" in doc):
            port = doc.get("fPort", doc.get("fport", fport))
            if port is not None and (not isinstance(port, int) or not 0 <= port <= 255):
                raise IngestError("fPort must be an integer from 0 to 255")
            raw = doc.get("hex") if "hex" in doc else doc.get("data")
            if not isinstance(raw, str):
                raise IngestError("data (base64) or hex must be a string")
            return IngestBody(_hex(raw) if "hex" in doc else _base64(raw), port)
        return IngestBody(body, fport)
    return IngestBody(body, fport)
