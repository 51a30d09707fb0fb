"""Frames between a JavaScript worker process and its parent: a 4-byte big-endian length, then orjson.

Requests (parent → worker), answered in order, one answer per request:

* ``{"op": "decode", "c": [decoder id, version, isolation key], "s": [source, dialect, timeout ms]?,
  "p": payload (base64), "f": fPort, "v": variables, "t": receive time (ms), "e": event?, "d": device?}``
  → ``{"d": data, "w": warnings, "e": errors, "m": [[name, unit, value], ...], "x": limit hit?,
  "b": contexts built}``. ``s`` comes with the first request for a version (the worker keeps the
  newest source per decoder id); ``e``/``d`` only for OS2iot decoders, the one dialect that reads them.
* ``{"op": "check", "s": [source, dialect, timeout ms], "examples": [...]}`` → ``{"dialect", "passed",
  "failures", "warnings"}`` (warnings: ``normalizedOutput`` mismatches) or
  ``{"error": "the decoder does not compile: ..."}``.
* ``{"op": "try", "s": [...], "p", "f", "v"}`` → ``{"data", "measurements", "warnings", "errors"}``.

The worker's first frame, before any request, is :data:`HELLO`: it is ready (imports done, limits set).
"""

from __future__ import annotations

import struct
from typing import Any

import orjson

HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024
"""A frame larger than this is a broken peer (requests carry at most a 1 MB source and a bounded event)."""

HELLO: dict[str, Any] = {"ready": True}


class FrameError(ValueError):
    """The byte stream is not a sequence of frames (a peer that is not a worker, or a corrupt pipe)."""


def frame(message: Any) -> bytes:
    """One message as a frame."""
    body = orjson.dumps(message)
    return HEADER.pack(len(body)) + body


class FrameReader:
    """Collects bytes as they arrive and hands back every complete message."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes | memoryview) -> list[Any]:
        """The messages completed by ``data`` (maybe none); raises :class:`FrameError` on garbage."""
        buffer = self._buffer
        buffer += data
        out: list[Any] = []
        start, end, header, unpack = 0, len(buffer), HEADER.size, HEADER.unpack_from
        with memoryview(buffer) as view:  # one view per feed (released before the buffer shrinks)
            while end - start >= header:
                (size,) = unpack(buffer, start)
                if size > MAX_FRAME:
                    raise FrameError(f"a frame of {size} bytes is larger than {MAX_FRAME}")
                body_start = start + header
                start = body_start + size
                if start > end:
                    start = body_start - header
                    break
                try:
                    out.append(orjson.loads(view[body_start:start]))
                except orjson.JSONDecodeError as exc:
                    raise FrameError(f"a frame is not JSON: {exc}") from None
        if start:
            del buffer[:start]
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buffer)
