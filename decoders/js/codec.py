"""``JsCodec``: a JavaScript codec compiled once, then called per message without ever raising.

Contexts: each thread that uses a codec gets its own QuickJS context (``decoders.js.engine`` explains
why a context cannot cross threads), built on first use; the constructor builds the calling thread's
and so rejects code that does not compile or load. Calls reuse that context; the script is never
parsed again unless the context is spent (a time or memory limit hit, or a global it could not
remove), in which case the next call builds a fresh one (``stats`` counts these).

Isolation between calls (mechanics in ``decoders.js.harness``, costs in tests/perf/bench_js.py): every
call runs the codec's top level again through its factory, so its ``var``/``let``/``const`` bindings,
closures, function properties and ``Map``s start fresh; its inputs are fresh copies; built-ins are
frozen deeply; and the globals a call adds (sloppy codecs assign undeclared ones, string- or
symbol-keyed) are deleted after it. So whatever device the previous call was for, nothing of it is
seen by the next, as on ChirpStack v4 (a new QuickJS runtime per decode), OS2iot (a worker per decode)
and The Things Stack (a new VM per run), at a fraction of the cost of a context per call (~2 ms).

``isolation_key`` still gives a separate context per key (the organization, for a decoder shared by
every organization), in a per-thread LRU of ``max_isolated`` contexts: the one channel left between
calls, functions a codec hangs on a built-in while loading, then never crosses organizations.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from decoders.contract import DecodeResult
from decoders.js.dialects import (
    Call,
    Dialect,
    encode_call,
    encode_function,
    resolve_dialect,
    uplink_call,
    uplink_function,
    uplink_input,
)
from decoders.js.engine import Engine, EngineFailure, JsCompileError
from decoders.js.limits import Limits
from decoders.js.os2iot import os2iot_metadata, os2iot_payload
from decoders.js.results import (
    CallOutcome,
    EncodeResult,
    NormalizeResult,
    decode_result,
    encode_result,
    normalize_result,
    parse_envelope,
)


@dataclass(slots=True)
class JsCodecStats:
    """Counters across all threads (plain increments: exact with one thread, close enough with more)."""

    calls: int = 0
    contexts_built: int = 0
    timeouts: int = 0
    out_of_memory: int = 0
    state_rebuilds: int = 0


class _Contexts:
    """One thread's contexts for one codec: the shared one and the per-key ones (LRU)."""

    __slots__ = ("isolated", "shared")

    def __init__(self) -> None:
        self.shared: Engine | None = None
        self.isolated: OrderedDict[str, Engine] = OrderedDict()


def _millis(moment: datetime | None) -> int:
    if moment is None:
        return int(time.time() * 1000)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


class JsCodec:
    """A sandboxed JavaScript codec in one of the dialects of ``decoders.js.dialects``.

    Raises :class:`JsCompileError` (a ValueError) when the source does not compile or load, or does
    not define the dialect's uplink function; after that, no method raises.
    """

    def __init__(
        self,
        source: str,
        *,
        dialect: Dialect | str | None = None,
        limits: Limits | None = None,
        max_isolated: int = 64,
    ) -> None:
        self.source = source
        self.limits = limits or Limits()
        self.max_isolated = max(1, max_isolated)
        self.stats = JsCodecStats()
        self._local = threading.local()
        engine = self._build()
        self.functions: frozenset[str] = engine.functions
        self.dialect: Dialect = resolve_dialect(dialect, engine.functions)
        self.uplink_function = uplink_function(self.dialect, engine.functions)
        self.encode_function = encode_function(self.dialect, engine.functions)
        self._contexts().shared = engine

    @property
    def has_normalize(self) -> bool:
        return "normalizeUplink" in self.functions

    @property
    def can_encode(self) -> bool:
        return self.encode_function is not None and self.encode_function in self.functions

    def decode(
        self,
        payload: bytes,
        fport: int | None,
        *,
        variables: Mapping[str, str] | None = None,
        event: Mapping[str, Any] | None = None,
        device: Mapping[str, Any] | None = None,
        recv_time: datetime | None = None,
        isolation_key: str | None = None,
    ) -> DecodeResult:
        """Decode one uplink. ``variables``: ChirpStack device variables; ``event`` and ``device``: the
        source event and device record, used by OS2iot decoders only; ``recv_time`` defaults to now."""
        return self.decode_normalized(payload, fport, variables=variables, event=event, device=device,
                                      recv_time=recv_time, isolation_key=isolation_key, normalize=False)[0]

    def decode_normalized(
        self,
        payload: bytes,
        fport: int | None,
        *,
        variables: Mapping[str, str] | None = None,
        event: Mapping[str, Any] | None = None,
        device: Mapping[str, Any] | None = None,
        recv_time: datetime | None = None,
        isolation_key: str | None = None,
        normalize: bool = True,
        recv_time_ms: int | None = None,
    ) -> tuple[DecodeResult, NormalizeResult | None]:
        """Decode, and for a codec with ``normalizeUplink`` normalize the decoded data in the same call (one
        run of the codec per uplink); the NormalizeResult is None without normalizeUplink or when decoding failed.
        ``recv_time_ms`` (Unix milliseconds) stands for ``recv_time`` where the caller has it as a number (the
        worker's requests do): no datetime is made unless an OS2iot decoder needs one."""
        if recv_time_ms is None:
            moment = recv_time or datetime.now(UTC)
            recv_time_ms = _millis(moment)
        else:
            moment = None
        os2iot_args = None
        if self.dialect is Dialect.OS2IOT:
            moment = moment or datetime.fromtimestamp(recv_time_ms / 1000, UTC)
            try:
                os2iot_args = (os2iot_payload(payload, fport, moment, event, device), os2iot_metadata(device, event))
            except Exception as exc:  # a malformed event or device record is this message's error
                errors = [f"cannot build the OS2iot arguments: {type(exc).__name__}: {exc}"]
                return DecodeResult(errors=errors), None
        wanted = normalize and self.has_normalize and self.uplink_function == "decodeUplink"
        call = uplink_call(self.dialect, payload, fport, recv_time_ms, variables, os2iot_args, wanted,
                           self.uplink_function)
        return self._decoded(call.function, self._run(call, isolation_key), wanted, isolation_key)

    def _decoded(self, function: str, outcome: CallOutcome, normalizing: bool, isolation_key: str | None
                 ) -> tuple[DecodeResult, NormalizeResult | None]:
        """An uplink call's outcome read: its decode result and, when normalizing was asked and decoding
        worked, the normalized data (asked for separately when the harness could not give it)."""
        result = decode_result(function, outcome)
        if not normalizing or not result.ok:
            return result, None
        if outcome.normalized is None:  # the harness judged the answer differently: ask separately
            return result, self.normalize(result.data, isolation_key=isolation_key)
        return result, normalize_result(outcome.normalized)

    def decode_downlink(
        self, payload: bytes, fport: int | None, *, variables: Mapping[str, str] | None = None
    ) -> DecodeResult:
        """Decode a downlink with TS013 ``decodeDownlink`` (to show what an encoded command means)."""
        with_variables = self.dialect is Dialect.CHIRPSTACK_V4
        call = Call("decodeDownlink", (uplink_input(payload, fport, variables, with_variables=with_variables),))
        return decode_result("decodeDownlink", self._run(call, None))

    def normalize(self, data: Mapping[str, Any], *, isolation_key: str | None = None) -> NormalizeResult:
        """TTN's normalized payload for decoded ``data``, when the codec defines ``normalizeUplink``."""
        if not self.has_normalize:
            return NormalizeResult(errors=["the codec defines no normalizeUplink()"])
        return normalize_result(self._run(Call("normalizeUplink", ({"data": dict(data)},)), isolation_key))

    def encode_downlink(
        self, data: Mapping[str, Any], *, fport: int | None = None, variables: Mapping[str, str] | None = None
    ) -> EncodeResult:
        """Encode a downlink command; the result's ``fport`` is the codec's choice, else ``fport``."""
        function = self.encode_function
        if function is None or function not in self.functions:
            return EncodeResult(errors=["the codec defines no downlink encoder"])
        if self.dialect is Dialect.CHIRPSTACK_V3 and fport is None:
            return EncodeResult(errors=["ChirpStack v3 Encode() needs an fPort"])
        call = encode_call(self.dialect, data, fport, variables, function)
        return encode_result(function, self._run(call, None), fport)

    def call(
        self, function: str, *args: Any, recv_time: datetime | None = None, isolation_key: str | None = None
    ) -> CallOutcome:
        """Call any entry function with JSON arguments and get its raw answer (for example runners).

        With ``recv_time``, ``args[0].recvTime`` is set to that moment as a ``Date``.
        """
        recv_ms = _millis(recv_time) if recv_time is not None and args else None
        return self._run(Call(function, args, recv_ms), isolation_key)

    def _run(self, call: Call, isolation_key: str | None) -> CallOutcome:
        try:
            args_json = call.to_json()
        except TypeError as exc:
            self.stats.calls += 1
            return CallOutcome.failed(f"the input is not JSON: {exc}")
        outcome = self._run_text(isolation_key, Engine.call, args_json)
        return outcome if isinstance(outcome, CallOutcome) else self._outcome(outcome)

    def _run_text(self, isolation_key: str | None, method: Callable[..., tuple[str, bool]], *args: Any
                  ) -> str | CallOutcome:
        """One call (``method`` of the engine: ``Engine.call`` or ``Engine.uplink``), up to the harness's answer
        as text; a failure (a limit, a load that failed again) as its outcome. A worker reads a plain answer
        straight from the text (``decoders.js.worker_codec``)."""
        self.stats.calls += 1
        contexts = self._contexts()
        try:
            engine = self._engine(contexts, isolation_key)
        except JsCompileError as exc:  # loaded before; a retry can still fail, e.g. out of memory
            return CallOutcome.failed(f"the codec failed to load again: {exc}")
        try:
            text, usable = method(engine, *args)
        except EngineFailure as failure:
            self._discard(contexts, isolation_key)
            if failure.kind == "timeout":
                self.stats.timeouts += 1
            elif failure.kind == "memory":
                self.stats.out_of_memory += 1
            return CallOutcome.failed(str(failure))
        if not usable:
            self._discard(contexts, isolation_key)
            self.stats.state_rebuilds += 1
        return text

    def _outcome(self, text: str) -> CallOutcome:
        """The harness's answer read; an out-of-memory the codec caught (and its context was rebuilt) is one."""
        outcome = parse_envelope(text)
        if outcome.error is not None and outcome.error.startswith("InternalError: out of memory"):
            self.stats.out_of_memory += 1
            limit = self.limits.memory_bytes / (1024 * 1024)
            return CallOutcome(error=f"out of memory (limit {limit:g} MiB)", logs=outcome.logs)
        return outcome

    def _contexts(self) -> _Contexts:
        contexts: _Contexts | None = getattr(self._local, "contexts", None)
        if contexts is None:
            contexts = _Contexts()
            self._local.contexts = contexts
        return contexts

    def _build(self) -> Engine:
        engine = Engine(self.source, self.limits)
        self.stats.contexts_built += 1
        return engine

    def _engine(self, contexts: _Contexts, key: str | None) -> Engine:
        if key is None:
            if contexts.shared is None:
                contexts.shared = self._build()
            return contexts.shared
        engine = contexts.isolated.get(key)
        if engine is None:
            engine = contexts.isolated[key] = self._build()
            if len(contexts.isolated) > self.max_isolated:
                contexts.isolated.popitem(last=False)
        else:
            contexts.isolated.move_to_end(key)
        return engine

    def _discard(self, contexts: _Contexts, key: str | None) -> None:
        if key is None:
            contexts.shared = None
        else:
            contexts.isolated.pop(key, None)
