"""The codec dialects in use, told apart by the functions a script defines, and the call each expects.

* ``ttn`` (The Things Stack, LoRa Alliance TS013): ``decodeUplink({bytes, fPort, recvTime})`` returning
  ``{data, warnings?, errors?}``; optional ``normalizeUplink({data})``, ``encodeDownlink({data})``,
  ``decodeDownlink({bytes, fPort})``.
* ``chirpstack-v4``: the same functions, with ``variables`` (the device's variables) in every input.
  Scripts cannot be told apart from TTN ones, so detection says ``ttn`` and the caller (an importer
  of ChirpStack's repository, a device profile) names ``chirpstack-v4``.
* ``chirpstack-v3``: ``Decode(fPort, bytes, variables)`` returning the data itself; ``Encode(fPort, obj,
  variables)`` returning the bytes.
* ``os2iot``: ``decode(payload, metadata)``: the ChirpStack event and OS2iot's device record
  (``decoders.js.os2iot`` builds both); returns whatever it likes, see ``decoders.js.results``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from decoders.js.engine import JsCompileError


class Dialect(StrEnum):
    """How a codec is called; the value is what registries and importers store."""

    TTN = "ttn"
    CHIRPSTACK_V4 = "chirpstack-v4"
    CHIRPSTACK_V3 = "chirpstack-v3"
    OS2IOT = "os2iot"


UPLINK_FUNCTION: Mapping[Dialect, str] = {
    Dialect.TTN: "decodeUplink",
    Dialect.CHIRPSTACK_V4: "decodeUplink",
    Dialect.CHIRPSTACK_V3: "Decode",
    Dialect.OS2IOT: "decode",
}
ENCODE_FUNCTION: Mapping[Dialect, str] = {
    Dialect.TTN: "encodeDownlink",
    Dialect.CHIRPSTACK_V4: "encodeDownlink",
    Dialect.CHIRPSTACK_V3: "Encode",
}


def detect_dialect(functions: Collection[str]) -> Dialect | None:
    """The dialect a script speaks, from the entry functions it defines (``decodeUplink`` wins)."""
    if "decodeUplink" in functions:
        return Dialect.TTN
    if "Decode" in functions:
        return Dialect.CHIRPSTACK_V3
    if "decode" in functions:
        return Dialect.OS2IOT
    return None


def resolve_dialect(requested: Dialect | str | None, functions: Collection[str]) -> Dialect:
    """The requested dialect if the script defines its uplink function, else the detected one."""
    if requested is None:
        found = detect_dialect(functions)
        if found is None:
            raise JsCompileError("the codec defines none of decodeUplink(), Decode() or decode()")
        return found
    try:
        dialect = Dialect(requested)
    except ValueError:
        known = ", ".join(d.value for d in Dialect)
        raise JsCompileError(f"unknown dialect {requested!r} (known: {known})") from None
    if UPLINK_FUNCTION[dialect] not in functions:
        raise JsCompileError(f"a {dialect.value} codec must define {UPLINK_FUNCTION[dialect]}()")
    return dialect


@dataclass(frozen=True, slots=True)
class Call:
    """One call into a codec: function name, JSON-ready arguments, and a ``recvTime`` for ``args[0]``."""

    function: str
    args: tuple[Any, ...]
    recv_time_ms: int | None = None
    normalize: bool = False  # TTN: also run normalizeUplink on the decoded data, in the same call

    def to_json(self) -> str:
        """The harness's argument string; raises TypeError when an argument is not JSON."""
        body: dict[str, Any] = {"fn": self.function, "args": self.args}
        if self.recv_time_ms is not None:
            body["recvTime"] = self.recv_time_ms
        if self.normalize:
            body["norm"] = 1
        return orjson.dumps(body).decode()


def uplink_input(
    payload: bytes, fport: int | None, variables: Mapping[str, str] | None, *, with_variables: bool
) -> dict[str, Any]:
    """The TS013 input object (``recvTime`` is added inside the context, as a ``Date``)."""
    data: dict[str, Any] = {"bytes": list(payload), "fPort": fport}
    if with_variables or variables is not None:
        data["variables"] = dict(variables or {})
    return data


def uplink_call(
    dialect: Dialect,
    payload: bytes,
    fport: int | None,
    recv_time_ms: int,
    variables: Mapping[str, str] | None = None,
    os2iot_args: tuple[dict[str, Any], dict[str, Any]] | None = None,
    normalize: bool = False,
) -> Call:
    """The call that decodes an uplink in ``dialect``; OS2iot takes its prepared (payload, metadata).
    ``normalize``: a TTN/ChirpStack v4 call also runs ``normalizeUplink`` on the decoded data."""
    if dialect is Dialect.CHIRPSTACK_V3:
        return Call("Decode", (fport, list(payload), dict(variables or {})))
    if dialect is Dialect.OS2IOT:
        if os2iot_args is None:
            raise ValueError("an OS2iot call needs its payload and metadata")
        return Call("decode", os2iot_args)
    with_variables = dialect is Dialect.CHIRPSTACK_V4
    return Call("decodeUplink", (uplink_input(payload, fport, variables, with_variables=with_variables),), recv_time_ms,
                normalize)


def encode_call(
    dialect: Dialect, data: Mapping[str, Any], fport: int | None, variables: Mapping[str, str] | None
) -> Call:
    """The call that encodes a downlink; ChirpStack v3's ``Encode`` takes the fPort as its first argument."""
    if dialect is Dialect.CHIRPSTACK_V3:
        return Call("Encode", (fport, dict(data), dict(variables or {})))
    body: dict[str, Any] = {"data": dict(data)}
    if fport is not None:
        body["fPort"] = fport
    if dialect is Dialect.CHIRPSTACK_V4 or variables is not None:
        body["variables"] = dict(variables or {})
    return Call("encodeDownlink", (body,))
