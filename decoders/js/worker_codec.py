"""A worker's codec: one uplink straight to the answer the pipeline takes (``decoders.js.wire``'s decode answer).

The JavaScript takes ~14 µs per TTN uplink; going through :class:`~decoders.js.codec.JsCodec`'s value objects
(the call, two call outcomes, the decode and normalize results, a Measurement per reading) cost as much
again in Python. So for the common case, a TS013 ``decodeUplink`` codec that answered plainly (data, string
warnings, no errors, no console lines, normalized data when it has ``normalizeUplink``), the answer is built
from the harness's JSON directly, with the measurement tables of ``decoders.contract`` and
``decoders.ttn_normalized``. Anything else (an error, console lines, odd shapes, other dialects) takes the
general path, from the same envelope: the codec runs once either way, and both give the same answer
(``tests/decoders/test_js_worker_answers.py`` compares them shape by shape).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from decoders.contract import DecodeResult, preset_into
from decoders.js.codec import JsCodec
from decoders.js.dialects import Dialect
from decoders.js.engine import Engine
from decoders.js.limits import Limits
from decoders.js.trial import decode_measured, measured
from decoders.ttn_normalized import normalized_into

Answer = dict[str, Any]
_PLAIN = (Dialect.TTN, Dialect.CHIRPSTACK_V4)
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
"""The fPorts the binding passes as they are (it truncates a larger int); any other takes the general path."""
_SAFE = 2**53
"""Receive times passed as a float, exactly; any other takes the general path (as JSON, as before)."""


def answer_of(result: DecodeResult, measurements: list[Any]) -> Answer:
    """The wire answer for a decode result and its measurements (Measurements or rows)."""
    return {"d": result.data, "w": result.warnings, "e": result.errors, "m": [list(m) for m in measurements]}


def plain_answer(text: str, normalize: bool) -> Answer | None:
    """The answer for a plain envelope, or None when it needs the general path (any error, console lines, a
    shape the general path words an error or a warning for, text orjson cannot read)."""
    try:
        env = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    # {"r": ...} alone, or with "n" when normalizing: no "e", "l" or "ne"
    if type(env) is not dict or len(env) != 1 + normalize or "r" not in env or (normalize and "n" not in env):
        return None
    r = env["r"]
    if type(r) is not dict:
        return None
    data, warnings, errors = r.get("data"), r.get("warnings", _NONE), r.get("errors")
    if type(data) is not dict or type(warnings) is not list or not (errors is None or errors == _NONE):
        return None
    for warning in warnings:
        if type(warning) is not str:
            return None
    rows = preset_into(data, {})
    if normalize:
        n = env["n"]
        if type(n) is not dict:
            return None
        items, errors = n.get("data"), n.get("errors")
        if not (errors is None or errors == _NONE):
            return None
        if type(items) is dict:
            normalized_into((items,), rows)  # a name the data has already keeps the data's value
        elif type(items) is list and all(type(item) is dict for item in items):
            normalized_into(items, rows)
        else:
            return None
    return {"d": data, "w": warnings if warnings is not _NONE else [], "e": [], "m": list(rows.values())}


_NONE: list[Any] = []
"""An absent ``warnings`` (and what an empty ``errors`` equals); never handed out."""


class WorkerCodec(JsCodec):
    """A :class:`JsCodec` that also answers an uplink in the wire's shape, measurements included."""

    def __init__(
        self, source: str, *, dialect: Dialect | str | None = None, limits: Limits | None = None, max_isolated: int = 64
    ) -> None:
        super().__init__(source, dialect=dialect, limits=limits, max_isolated=max_isolated)
        self._plain = self.dialect in _PLAIN and self.uplink_function == "decodeUplink"
        self._with_variables = self.dialect is Dialect.CHIRPSTACK_V4
        self._normalize = self.has_normalize

    def decode_answer(
        self,
        payload: bytes,
        fport: int | None,
        *,
        variables: Mapping[str, str] | None = None,
        event: Mapping[str, Any] | None = None,
        device: Mapping[str, Any] | None = None,
        recv_time_ms: int | None = None,
        isolation_key: str | None = None,
    ) -> Answer:
        """Decode and measure one uplink with one run of the codec; the same answer as
        ``decode_measured`` made into the wire's shape."""
        if (not self._plain or recv_time_ms is None or not (variables is None or type(variables) is dict)
                or not -_SAFE <= recv_time_ms <= _SAFE
                or not (fport is None or (type(fport) is int and _INT32_MIN <= fport <= _INT32_MAX))):
            result, measurements = decode_measured(
                self,
                payload,
                fport,
                variables=variables,
                event=event,
                device=device,
                recv_time_ms=recv_time_ms,
                isolation_key=isolation_key,
            )
            return answer_of(result, measurements)
        normalize = self._normalize
        if variables is not None:
            try:
                variables_json: str | None = orjson.dumps(variables).decode() if variables else "{}"
            except TypeError as exc:
                self.stats.calls += 1
                return answer_of(DecodeResult(errors=[f"the input is not JSON: {exc}"]), [])
        else:
            variables_json = "{}" if self._with_variables else None
        outcome = self._run_text(isolation_key, Engine.uplink, orjson.dumps(list(payload)).decode(), fport,
                                 float(recv_time_ms), normalize, variables_json)
        if isinstance(outcome, str):
            answer = plain_answer(outcome, normalize)
            if answer is not None:
                return answer
            outcome = self._outcome(outcome)
        result, normalized = self._decoded("decodeUplink", outcome, normalize, isolation_key)
        return answer_of(result, measured(result.data, result.warnings, normalized) if result.ok else [])
