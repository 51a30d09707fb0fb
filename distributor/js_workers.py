"""One JavaScript worker process as the event loop sees it: a subprocess protocol, no task of its own.

``distributor.js_pool`` decides what each worker runs; a :class:`WorkerHandle` only carries it out:
it spawns ``python -m decoders.js.worker`` (``loop.subprocess_exec`` with this protocol, so answers
arrive as callbacks and nothing awaits a read per message), buffers the frames assigned during a loop
turn and writes them in one write, keeps the jobs written and not yet answered in order, and knows
since when the oldest of them has been at the head, which is what the pool's deadline is measured
against. A handle is used once: after a kill or a death the pool spawns a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from decoders.js.wire import HELLO, FrameError, FrameReader, frame
from registry.records import JsDecoderRecord

log = structlog.get_logger("iotd.js")

MAX_PIPELINE = 64
"""Jobs written to one worker and not yet answered."""
MAX_PIPELINE_BUDGET_S = 2.0
"""Their time limits together (at least one job): what a decoder suspended meanwhile can still cost."""


@dataclass(slots=True, eq=False)
class JsJob:
    """One uplink waiting for (or inside) a worker; ``done`` gets the worker's answer or a stand-in."""

    organization: str
    record: JsDecoderRecord
    key: str | None
    body: dict[str, Any]                  # the request without the source: see decoders.js.wire
    done: Callable[[dict[str, Any]], None]
    strikes: int = 0                      # workers that died with it at the head of their queue
    budget_s: float = 0.0                 # set when written: time limit + load + grace
    queued_at: float = 0.0

    @property
    def codec(self) -> tuple[str, int, str | None]:
        return self.record.id, self.record.version, self.key


@dataclass(eq=False)
class WorkerHandle(asyncio.SubprocessProtocol):
    """One worker process; ``on_answers(handle, answers)`` and ``on_lost(handle, why)`` call the pool back."""

    slot: int
    on_answers: Callable[[WorkerHandle, list[Any]], None]
    on_lost: Callable[[WorkerHandle, str], None]
    on_ready: Callable[[WorkerHandle], None]
    transport: asyncio.SubprocessTransport | None = None
    ready: bool = False
    dead: bool = False
    started_at: float = 0.0
    inflight: deque[JsJob] = field(default_factory=deque)
    inflight_budget_s: float = 0.0
    head_since: float = 0.0
    owner: str | None = None              # the organization whose jobs it holds (one at a time)
    sent: dict[str, int] = field(default_factory=dict)            # decoder id -> version whose source it has
    loaded: set[tuple[str, int, str | None]] = field(default_factory=set)
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    started: asyncio.Event = field(default_factory=asyncio.Event)     # set with ``ready``
    _outbox: list[bytes] = field(default_factory=list, init=False)
    _reader: FrameReader = field(default_factory=FrameReader, init=False)
    _stdin: asyncio.WriteTransport | None = field(default=None, init=False)

    async def spawn(self) -> None:
        loop = asyncio.get_running_loop()
        self.started_at = loop.time()
        await loop.subprocess_exec(lambda: self, sys.executable, "-m", "decoders.js.worker",
                                   stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=None)

    @property
    def pid(self) -> int | None:
        return self.transport.get_pid() if self.transport is not None else None

    def has_room(self) -> bool:
        if not self.ready or self.dead:
            return False
        if not self.inflight:
            return True
        return len(self.inflight) < MAX_PIPELINE and self.inflight_budget_s < MAX_PIPELINE_BUDGET_S

    def assign(self, job: JsJob, budget_s: float, now: float) -> None:
        """Queue ``job`` for this loop turn's write; the source goes along the first time for a version."""
        record = job.record
        body = job.body
        if self.sent.get(record.id) != record.version:
            body = {**body, "s": [record.source, record.dialect, record.timeout_ms]}
            self.sent[record.id] = record.version
        if not self.inflight:
            self.head_since = now
        job.budget_s = budget_s
        self.inflight.append(job)
        self.inflight_budget_s += record.timeout_ms / 1000
        self._outbox.append(frame(body))

    def flush(self) -> None:
        if self._outbox and self._stdin is not None and not self.dead:
            self._stdin.write(b"".join(self._outbox))
        self._outbox.clear()

    def answered(self) -> JsJob:
        job = self.inflight.popleft()
        self.inflight_budget_s = max(0.0, self.inflight_budget_s - job.record.timeout_ms / 1000)
        self.loaded.add(job.codec)
        return job

    def kill(self) -> None:
        """SIGKILL, from outside: nothing the JavaScript does can delay it."""
        self.dead = True
        self._outbox.clear()
        if self.transport is not None:
            with contextlib.suppress(ProcessLookupError):
                self.transport.kill()

    def close(self) -> None:
        self.dead = True
        if self.transport is not None:
            self.transport.close()

    # --- asyncio.SubprocessProtocol ----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.SubprocessTransport)
        self.transport = transport
        stdin = transport.get_pipe_transport(0)
        assert isinstance(stdin, asyncio.WriteTransport)
        self._stdin = stdin

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd != 1 or self.dead:
            return
        try:
            answers = self._reader.feed(data)
        except FrameError as exc:
            self.on_lost(self, f"it wrote something that is not an answer ({exc})")
            return
        if not self.ready and answers:
            if answers[0] != HELLO:
                self.on_lost(self, "it did not start as a JavaScript worker")
                return
            answers.pop(0)
            self.ready = True
            self.started.set()
            self.on_ready(self)
        if answers:
            self.on_answers(self, answers)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1 and not self.dead:
            self.on_lost(self, "its output closed")

    def process_exited(self) -> None:
        self.exited.set()
        if not self.dead:
            code = self.transport.get_returncode() if self.transport is not None else None
            self.on_lost(self, f"it exited with code {code}")
