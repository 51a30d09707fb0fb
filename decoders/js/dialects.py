"""The codec dialects in use, told apart by the functions a script defines, and the call each expects.

* ``ttn`` (The Things Stack, LoRa Alliance TS013): ``decodeUplink({bytes, fPort, recvTime})`` returning
  ``{data, warnings?, errors?}``; optional ``normalizeUplink({data})``, ``encodeDownlink({data})``,
  ``decodeDownlink({bytes, fPort})``. A script without ``decodeUplink`` may define The Things Network
  v2's ``Decoder(bytes, fPort)`` instead, which The Things Stack still calls (its uplink wrapper falls
  back to ``{data: Decoder(bytes, fPort)}``, without ``recvTime`` and without ``normalizeUplink``), and
  likewise ``Encoder(data, fPort)`` for ``{bytes: Encoder(data, fPort), fPort}``; so do we.
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


LEGACY_TTN: Mapping[str, str] = {"decodeUplink": "Decoder", "encodeDownlink": "Encoder"}
"""The Things Network v2 functions The Things Stack falls back to when the TS013 one is missing."""


def ttn_function(routine: str, functions: Collection[str]) -> str:
    """The function that serves a TTN ``routine``: itself, else its TTN v2 fallback when the script has it."""
    legacy = LEGACY_TTN.get(routine)
    return legacy if routine not in functions and legacy is not None and legacy in functions else routine


def uplink_function(dialect: Dialect, functions: Collection[str]) -> str:
    """The function a codec of ``dialect`` decodes uplinks with (TTN: ``Decoder`` when it lacks decodeUplink)."""
    if dialect is Dialect.TTN:
        return ttn_function("decodeUplink", functions)
    return UPLINK_FUNCTION[dialect]


def encode_function(dialect: Dialect, functions: Collection[str]) -> str | None:
    """The function a codec of ``dialect`` encodes downlinks with, if the dialect has one."""
    if dialect is Dialect.TTN:
        return ttn_function("encodeDownlink", functions)
    return ENCODE_FUNCTION.get(dialect)


def detect_dialect(functions: Collection[str]) -> Dialect | None:
    """The dialect a script speaks, from the entry functions it defines (``decodeUplink`` wins; TTN v2's
    ``Decoder`` counts last, as scripts written for several platforms often define it beside the others)."""
    if "decodeUplink" in functions:
        return Dialect.TTN
    if "Decode" in functions:
        return Dialect.CHIRPSTACK_V3
    if "decode" in functions:
        return Dialect.OS2IOT
    if "Decoder" in functions:
        return Dialect.TTN
    return None


def resolve_dialect(requested: Dialect | str | None, functions: Collection[str]) -> Dialect:
    """The requested dialect if the script defines its uplink function, else the detected one."""
    if requested is None:
        found = detect_dialect(functions)
        if found is None:
            raise JsCompileError("the codec defines none of decodeUplink(), Decode(), decode() or TTN v2's Decoder()")
        return found
    try:
        dialect = Dialect(requested)
    except ValueError:
        known = ", ".join(d.value for d in Dialect)
        raise JsCompileError(f"unknown dialect {requested!r} (known: {known})") from None
    if uplink_function(dialect, functions) not in functions:
        also = " (or TTN v2's Decoder())" if dialect is Dialect.TTN else ""
        raise JsCompileError(f"a {dialect.value} codec must define {UPLINK_FUNCTION[dialect]}(){also}")
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
    function: str | None = None,
) -> Call:
    """The call that decodes an uplink in ``dialect``; OS2iot takes its prepared (payload, metadata).
    ``normalize``: a TTN/ChirpStack v4 call also runs ``normalizeUplink`` on the decoded data.
    ``function``: ``"Decoder"`` for a TTN codec that only has TTN v2's (see :func:`uplink_function`)."""
    if function == "Decoder":
        return Call("Decoder", (list(payload), fport))
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
    dialect: Dialect, data: Mapping[str, Any], fport: int | None, variables: Mapping[str, str] | None,
    function: str | None = None,
) -> Call:
    """The call that encodes a downlink; ChirpStack v3's ``Encode`` takes the fPort as its first argument,
    TTN v2's ``Encoder`` (``function="Encoder"``) takes it second."""
    if function == "Encoder":
        return Call("Encoder", (dict(data), fport))
    if dialect is Dialect.CHIRPSTACK_V3:
        return Call("Encode", (fport, dict(data), dict(variables or {})))
    body: dict[str, Any] = {"data": dict(data)}
    if fport is not None:
        body["fPort"] = fport
    if dialect is Dialect.CHIRPSTACK_V4 or variables is not None:
        body["variables"] = dict(variables or {})
    return Call("encodeDownlink", (body,))
