"""The process that runs JavaScript codecs for the service: ``python -m decoders.js.worker``.

It reads requests as frames from stdin and writes one answer per request, in order, to stdout
(``decoders.js.wire`` has the shapes). The service never runs JavaScript in its own process: a worker
that does not answer in time is killed from outside, which no JavaScript construct can outlast.

* Codecs are held per (decoder id, version, isolation key), loaded on first use from the newest source
  the parent sent for that decoder id, in an LRU of :data:`MAX_CODECS`; one that does not compile is
  remembered as its error. Nothing here imports asyncio, the registry or the distributor.
* Per uplink, the Python around the JavaScript is kept small (``decoders.js.worker_codec``): a plain TTN
  answer goes from the harness's JSON to the wire's answer through the measurement tables, without the
  general path's value objects, which answer everything else the same way.
* Batching: the worker takes every request that has arrived, then writes their answers in one write
  (a long batch every :data:`STREAM_EVERY_S`, so the parent can send more meanwhile). An answer is
  never held behind a slow request: while one runs longer than :data:`FLUSH_AFTER_S`, a small thread
  writes the answers already made (QuickJS releases the GIL while JavaScript runs), so the parent's
  deadline for the head of its queue only ever waits for that request.
* Limits: an address-space rlimit (:data:`ADDRESS_SPACE_BYTES`) so a runaway cannot take the host; each
  codec context has its own QuickJS memory limit. SIGINT is ignored: a terminal's Ctrl-C reaches the
  whole process group, and the parent decides when workers stop (stdin closed: exit 0).
"""

from __future__ import annotations

import base64
import os
import resource
import signal
import sys
import threading
import time
import traceback
from binascii import a2b_base64
from collections import OrderedDict, deque
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import orjson

from decoders.js.engine import JsCompileError
from decoders.js.limits import Limits
from decoders.js.trial import check_codec, preview_codec, try_codec
from decoders.js.wire import HELLO, FrameError, FrameReader, frame
from decoders.js.worker_codec import WorkerCodec

ADDRESS_SPACE_BYTES = 2 * 1024**3
MAX_CODECS = 256
FLUSH_AFTER_S = 0.002
STREAM_EVERY_S = 0.001
LOAD_EXTRA_MS = 1000
READ_BYTES = 1 << 20
"""Loading may take the call's limit plus this (the context, the shims, freezing the built-ins): every call
runs the top level again within the call's own limit anyway, so a longer load only delays the error."""


class Codecs:
    """The newest source per decoder id, and the loaded codecs (or their compile errors), LRU-bounded."""

    def __init__(self, limit: int = MAX_CODECS) -> None:
        self._limit = limit
        self._sources: dict[str, tuple[int, str, str | None, int]] = {}
        self._loaded: OrderedDict[tuple[str, int, str | None], WorkerCodec | str] = OrderedDict()

    def get(self, ident: list[Any], spec: list[Any] | None) -> tuple[WorkerCodec | str, int]:
        """The codec (or why it does not compile) and how many contexts loading it built (0 or 1)."""
        if spec is None:  # the usual request: a codec loaded before, named exactly as it is kept
            named = tuple(ident)
            found = self._loaded.get(named)
            if found is not None:
                self._loaded.move_to_end(named)
                return found, 0
        decoder_id, version, key = str(ident[0]), int(ident[1]), ident[2]
        if spec is not None:
            known = self._sources.get(decoder_id)
            if known is None or known[0] != version:
                self._sources[decoder_id] = (version, str(spec[0]), spec[1], int(spec[2]))
                for stale in [k for k in self._loaded if k[0] == decoder_id and k[1] != version]:
                    del self._loaded[stale]
        wanted = (decoder_id, version, key)
        found = self._loaded.get(wanted)
        if found is not None:
            self._loaded.move_to_end(wanted)
            return found, 0
        source = self._sources.get(decoder_id)
        if source is None or source[0] != version:
            return f"the worker was not given version {version} of {decoder_id!r}", 0
        try:
            limits = Limits(time_ms=source[3], load_time_ms=source[3] + LOAD_EXTRA_MS)
            found = WorkerCodec(source[1], dialect=source[2], limits=limits)
            built = 1
        except (JsCompileError, ValueError) as exc:
            found, built = str(exc), 0
        self._loaded[wanted] = found
        if len(self._loaded) > self._limit:
            self._loaded.popitem(last=False)
        return found, built


def decode(codecs: Codecs, request: dict[str, Any]) -> dict[str, Any]:
    """One uplink through its codec, measurements included: the pipeline needs nothing more."""
    codec, built = codecs.get(request["c"], request.get("s"))
    if isinstance(codec, str):
        return {"d": {}, "w": [], "e": [f"the decoder does not compile: {codec}"], "m": []}
    stats = codec.stats
    timeouts, oom, contexts = stats.timeouts, stats.out_of_memory, stats.contexts_built
    received = request.get("t")
    answer = codec.decode_answer(
        a2b_base64(request["p"]),
        request.get("f"),
        variables=request.get("v"),
        event=request.get("e"),
        device=request.get("d"),
        recv_time_ms=int(received) if received else None,
    )
    if stats.timeouts != timeouts:
        answer["x"] = "timeout"
    elif stats.out_of_memory != oom:
        answer["x"] = "memory"
    built += stats.contexts_built - contexts
    if built:
        answer["b"] = built
    return answer


def handle(codecs: Codecs, request: Any) -> dict[str, Any]:
    """The answer to one request; a bug here is that request's error, never the worker's end."""
    op = request.get("op") if isinstance(request, dict) else None
    try:
        if op == "decode":
            return decode(codecs, request)
        if op == "check":
            source, dialect, timeout_ms = request["s"]
            return check_codec(source, dialect, int(timeout_ms), request.get("examples") or ())
        if op == "try":
            source, dialect, timeout_ms = request["s"]
            return try_codec(
                source,
                dialect,
                int(timeout_ms),
                base64.b64decode(request["p"]),
                request.get("f"),
                dict(request.get("v") or {}),
            )
        if op == "preview":
            source, dialect, timeout_ms = request["s"]
            uplinks = [(base64.b64decode(payload), fport) for payload, fport in request["u"]]
            return preview_codec(source, dialect, int(timeout_ms), uplinks)
    except Exception as exc:  # answer, and keep serving the other requests
        error = f"internal error in the JavaScript worker: {type(exc).__name__}: {exc}"
        return {"d": {}, "w": [], "e": [error], "m": []} if op == "decode" else {"error": error}
    return {"error": f"unknown request {op!r}"}


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Output:
    """Answers waiting to be written, written in one go when the input runs dry, or by the flusher thread
    when the request now running has taken longer than :data:`FLUSH_AFTER_S`.

    The flusher ticks every :data:`FLUSH_AFTER_S` while the worker has work, and parks once a whole tick went by
    with the worker waiting for input; only a parked flusher is woken (an Event per batch of requests, and the
    thread switch it causes, cost about a microsecond per request in a busy worker)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pending: list[bytes] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._reading = True
        self._reads = 0  # batches read: the flusher parks only when this stood still for a tick
        self._parked = False
        self.busy_since = 0.0  # when the request now running started (monotonic); 0 between requests
        self.flushed_at = 0.0

    def start(self) -> None:
        threading.Thread(target=self._flusher, name="flusher", daemon=True).start()

    def add(self, data: bytes) -> None:
        with self._lock:
            self._pending.append(data)

    def before_read(self) -> None:
        """Write everything pending; the worker is about to wait for input."""
        with self._lock:
            self._reading = True
            self._write_pending()

    def flush(self) -> None:
        with self._lock:
            self._write_pending()

    def after_read(self) -> None:
        self._reading = False
        self._reads += 1
        if self._parked:  # read after the count: a flusher parking now sees the count move, or is woken here
            self._wake.set()

    def _write_pending(self) -> None:
        self.flushed_at = time.monotonic()
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            _write_all(self._fd, data)

    def _flusher(self) -> None:
        seen = -1
        while True:
            time.sleep(FLUSH_AFTER_S)
            since = self.busy_since
            if since and self._pending and time.monotonic() - since >= FLUSH_AFTER_S:
                with self._lock:
                    self._write_pending()
            reads = self._reads
            if reads == seen and self._reading:
                self._parked = True
                self._wake.clear()
                if self._reads == reads:
                    self._wake.wait()
                self._parked = False
            seen = self._reads


def _limit_address_space() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = ADDRESS_SPACE_BYTES if hard == resource.RLIM_INFINITY else min(ADDRESS_SPACE_BYTES, hard)
    if soft == resource.RLIM_INFINITY or soft > limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def serve(in_fd: int, out_fd: int) -> int:
    """Answer requests until stdin closes; the exit code (2: the parent sent something that is not frames)."""
    out = Output(out_fd)
    out.start()
    out.add(frame(HELLO))
    reader, codecs, requests = FrameReader(), Codecs(), deque[Any]()
    chunk = bytearray(READ_BYTES)  # read into one buffer: a fresh 1 MiB bytes per read costs mmap, faults, munmap
    try:
        while True:
            if not requests:
                out.before_read()
                size = os.readv(in_fd, [chunk])
                if not size:
                    return 0
                out.after_read()
                with memoryview(chunk) as view:
                    requests.extend(reader.feed(view[:size]))
                continue
            request = requests.popleft()
            out.busy_since = time.monotonic()
            answer = handle(codecs, request)
            out.busy_since = 0.0
            out.add(frame(answer))
            if requests and time.monotonic() - out.flushed_at >= STREAM_EVERY_S:
                out.flush()  # a long batch streams its answers: the parent refills while this one works
    except FrameError as exc:
        log_line("error", "the JavaScript worker read a malformed frame; exiting", error=str(exc))
        return 2
    except BrokenPipeError:
        return 0


def log_line(level: str, event: str, **fields: Any) -> None:
    """One JSON line on stderr, shaped like the service's own (the worker shares its stderr)."""
    line = {
        "event": event,
        "level": level,
        "logger": "iotd.js.worker",
        "timestamp": datetime.now(UTC).isoformat(),
        **fields,
    }
    sys.stderr.buffer.write(orjson.dumps(line, default=str) + b"\n")
    sys.stderr.flush()


def _log_uncaught(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
    log_line("critical", "the JavaScript worker failed", exception="".join(traceback.format_exception(kind, error, tb)))


def main() -> int:
    sys.excepthook = _log_uncaught
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _limit_address_space()
    out_fd = os.dup(1)
    os.dup2(2, 1)  # a stray print goes to stderr, never into the frames
    return serve(0, out_fd)


if __name__ == "__main__":
    sys.exit(main())
