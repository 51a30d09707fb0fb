"""Generic JSON devices: the payload is a JSON object; fields named as in the vocabulary
(``temperature``, ``humidity``, ``co2``, ...) become measurements with the vocabulary's unit.

For HTTP and MQTT devices that already speak JSON, so a city can connect them without code.
"""

from __future__ import annotations

import orjson

from decoders.contract import DecodeResult, DeviceType, Example, failure

DEVICE = DeviceType(
    id="json",
    vendor="Generic",
    model="JSON object",
    description="A JSON object; fields named after vocabulary quantities become measurements",
    protocols=("http", "mqtt", "nbiot", "lorawan"),
    version="1",
)

MEASUREMENTS: tuple[str, ...] = ()   # any vocabulary quantity, by field name


def decode(payload: bytes, fport: int | None) -> DecodeResult:
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return failure(f"not JSON: {exc}")
    if not isinstance(doc, dict):
        return failure(f"a JSON object is expected, got {type(doc).__name__}")
    return DecodeResult(data=doc)


EXAMPLES = (
    Example("temperature and humidity", b'{"temperature": 21.5, "humidity": 40, "note": "hall"}'.hex(), None,
            data={"temperature": 21.5, "humidity": 40, "note": "hall"},
            measurements=(("temperature", 21.5), ("humidity", 40))),
    Example("not JSON", b"\x01\x02".hex(), None, errors=("not JSON",)),
    Example("an array, not an object", b"[1, 2]".hex(), None, errors=("JSON object is expected",)),
)
