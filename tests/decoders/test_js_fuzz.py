"""Random bytes and fPorts through JavaScript codecs of every dialect: the result is always a
DecodeResult (a codec's exception, a bad answer or a timeout is an error in it), never a Python exception."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decoders.contract import DecodeResult
from decoders.js import JsCodec, Limits

CODECS = {
    "ttn": "function decodeUplink(i) { if (i.fPort === 9) throw new Error('port 9'); "
           "return {data: {t: (i.bytes[0] << 8 | i.bytes[1]) / 10, n: i.bytes.length}}; }",
    "chirpstack-v3": "function Decode(fPort, bytes, variables) { return bytes.length > 3 ? {v: bytes[3]} : null; }",
    "os2iot": "function decode(payload, metadata) { var b = Buffer.from(payload.data, 'base64'); "
              "return {fport: payload.fPort, first: b.readUInt8(0), name: JSON.parse(metadata.metadata).x}; }",
    "runaway": "function decodeUplink(i) { if (i.bytes[0] === 255) { while (true) {} } return {data: {}}; }",
}
COMPILED = {name: JsCodec(source, limits=Limits(time_ms=20)) for name, source in CODECS.items()}


@pytest.mark.parametrize("name", list(CODECS))
@settings(max_examples=150, deadline=None)
@given(payload=st.binary(max_size=48), fport=st.one_of(st.none(), st.integers(0, 255)))
def test_random_frames_never_raise(name: str, payload: bytes, fport: int | None) -> None:
    result = COMPILED[name].decode(payload, fport, device={"name": "d", "metadata": {"x": 1}})
    assert isinstance(result, DecodeResult)
    assert isinstance(result.data, dict)
    assert all(isinstance(e, str) for e in result.errors + result.warnings)
