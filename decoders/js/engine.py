"""One QuickJS context holding one loaded codec, used by the one thread that created it.

The engine is quickjs-ng (PyPI ``quickjs-ng``, module ``quickjs``): its interrupt handler, which
enforces the time limit, also runs inside the regular-expression engine, so a catastrophic regex
stops at the limit like a loop does. Each ``Context`` is its own runtime (heap, limits, job queue)
and the binding releases the GIL while JavaScript runs; a runtime touched by two threads can crash
even when the accesses do not overlap, so :class:`Engine` refuses calls from any thread but its
creator's (``decoders.js.codec`` keeps one engine per thread). An engine that hit its time or memory
limit, or whose state could not be restored after a call, raises :class:`EngineFailure` or reports
itself unusable, and its owner builds a fresh one (a few milliseconds: the context, the shims, the
codec's parse and load run, and freezing the built-ins).
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import quickjs

from decoders.js.harness import factory_source, harness_expression
from decoders.js.limits import MIB, Limits
from decoders.js.shims import shims_for

MAX_PENDING_JOBS = 64
"""Promise jobs a call may leave behind; more means the codec keeps scheduling work, and is reset."""

_LINE = re.compile(r"<input>:(\d+)")


class JsCompileError(ValueError):
    """The codec source does not compile or load; ``line`` is 1-based when QuickJS names one."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(reason if line is None else f"{reason} (line {line})")
        self.reason = reason
        self.line = line


class EngineFailure(Exception):
    """The context was interrupted mid-call and cannot be trusted any more; ``kind`` says why."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _limit_failure(exc: BaseException, limits: Limits) -> EngineFailure:
    first = _first_line(exc)
    if "interrupted" in first:
        return EngineFailure("timeout", f"timed out after {limits.time_ms:g} ms")
    if "out of memory" in first:
        return EngineFailure("memory", f"out of memory (limit {limits.memory_bytes / MIB:g} MiB)")
    if "stack overflow" in first or "Maximum call stack size exceeded" in first:
        return EngineFailure("stack", "stack overflow")
    return EngineFailure("internal", f"JavaScript runtime error: {first}")


def _compile_error(exc: BaseException, limits: Limits) -> JsCompileError:
    first = _first_line(exc)
    match = _LINE.search(str(exc))
    line = int(match.group(1)) if match else None
    if first.startswith("SyntaxError"):
        return JsCompileError(first, line)
    if "interrupted" in first:
        return JsCompileError(f"loading the codec timed out after {limits.load_time_ms:g} ms")
    if "out of memory" in first:
        return JsCompileError(f"loading the codec ran out of memory (limit {limits.memory_bytes / MIB:g} MiB)")
    return JsCompileError(f"the codec failed to load: {first}", line)


class Engine:
    """A context with the shims, the harness and one codec loaded, sealed and ready for calls."""

    __slots__ = ("_call", "_ctx", "_limits", "_reset", "_thread", "_uplink", "functions")

    def __init__(self, source: str, limits: Limits) -> None:
        if "\x00" in source:
            raise JsCompileError("the source contains a NUL character")
        self._thread = threading.get_ident()
        self._limits = limits
        ctx = quickjs.Context()
        ctx.set_memory_limit(limits.memory_bytes)
        ctx.set_max_stack_size(limits.stack_bytes)
        ctx.set_time_limit(limits.load_time_ms / 1000)
        options = {
            "captureConsole": limits.capture_console,
            "maxLogLines": limits.max_console_lines,
            "maxLogChars": limits.max_console_chars,
            "maxOutputChars": limits.max_output_chars,
        }
        shims = shims_for(source)
        if shims:
            ctx.eval(shims)
        ctx.eval(f"globalThis.__iotd_harness = {harness_expression(options)};")
        self._call: Any = ctx.eval("__iotd_harness.call")
        self._uplink: Any = ctx.eval("__iotd_harness.uplink")
        self._reset: Any = ctx.eval("__iotd_harness.reset")
        seal: Any = ctx.eval("__iotd_harness.seal")
        ctx.eval("delete globalThis.__iotd_harness;")
        wrapped = factory_source(source)
        try:
            info = json.loads(seal(ctx.eval(wrapped), wrapped[1:-1]))
        except quickjs.JSException as exc:
            raise _compile_error(exc, limits) from None
        except UnicodeEncodeError:
            raise JsCompileError("the source is not valid Unicode text") from None
        ctx.set_time_limit(limits.time_ms / 1000)
        self._ctx = ctx
        self.functions: frozenset[str] = frozenset(info["functions"])

    def call(self, args_json: str) -> tuple[str, bool]:
        """Run one harness call; returns its JSON envelope and whether this engine may be used again.

        Raises :class:`EngineFailure` when a limit interrupted the call (the engine is then spent).
        """
        return self._answer(self._call, args_json)

    def uplink(
        self, bytes_json: str, fport: int | None, recv_time_ms: float, normalize: bool, variables_json: str | None
    ) -> tuple[str, bool]:
        """:meth:`call` for ``decodeUplink`` with the input's parts as they are (a worker's plain uplink): the
        harness builds the same input without parsing an envelope. ``recv_time_ms`` goes as a float, as the
        binding passes a large int truncated to 32 bits; ``fport`` must fit in 32 bits."""
        return self._answer(self._uplink, bytes_json, fport, recv_time_ms, normalize, variables_json)

    def _answer(self, function: Any, *args: Any) -> tuple[str, bool]:
        if threading.get_ident() != self._thread:
            raise RuntimeError("a QuickJS context may only be used by the thread that created it")
        try:
            out = function(*args)
        except quickjs.JSException as exc:
            raise _limit_failure(exc, self._limits) from None
        except UnicodeDecodeError:  # a string QuickJS could not hand over as UTF-8
            return '{"e": "the result is not valid Unicode text"}', True
        if type(out) is not str:
            raise EngineFailure("internal", f"the harness returned {type(out).__name__}")
        usable = True
        if out[:1] == "!":
            out, usable = out[1:], False
        try:
            queued = self._ctx.execute_pending_job()  # the usual answer: nothing was left queued
        except quickjs.JSException:
            return out, False
        if queued and not self._drain_jobs(1):
            usable = False
        return out, usable

    def _drain_jobs(self, ran: int = 0) -> bool:
        """Run promise jobs the call left queued (``ran`` of them already), then reset again; False when that is
        not possible."""
        try:
            while self._ctx.execute_pending_job():
                ran += 1
                if ran >= MAX_PENDING_JOBS:
                    return False
            return ran == 0 or self.reset()
        except quickjs.JSException:
            return False

    def reset(self) -> bool:
        """Put the globals back as they were after load (every call does this itself); False if it could not."""
        return not self._reset()

    def memory_used(self) -> int:
        """Bytes of the context's heap in use (QuickJS's own accounting)."""
        return int(self._ctx.memory()["memory_used_size"])
