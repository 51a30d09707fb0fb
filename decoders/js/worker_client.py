"""A blocking client of one JavaScript worker process, with a hard deadline per request (the API's trials).

One request at a time (a lock serializes callers); the process starts on first use. A request not answered
by its deadline gets the worker SIGKILLed from outside, whatever the JavaScript is doing, and
:class:`WorkerTimeout` raised; the next request starts a fresh worker. Used from a thread (the API
runs it through ``asyncio.to_thread``), never on an event loop.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import time
from typing import Any

from decoders.js.wire import HELLO, FrameError, FrameReader, frame

STARTUP_S = 30.0


class WorkerLost(RuntimeError):
    """The worker died, or answered with something that is not a frame."""


class WorkerTimeout(WorkerLost):
    """The request was not answered in time; the worker was killed."""


class WorkerProcess:
    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader = FrameReader()
        self._lock = threading.RLock()  # a caller that gave up waiting leaves its request running: the next waits

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def request(self, message: Any, deadline_s: float) -> Any:
        """The answer to ``message``; WorkerTimeout after ``deadline_s`` (the worker's start not counted)."""
        with self._lock:
            proc = self._started()
            assert proc.stdin is not None
            try:
                proc.stdin.write(frame(message))
                proc.stdin.flush()
            except OSError as exc:
                self.close()
                raise WorkerLost(f"the JavaScript worker is gone: {exc}") from None
            return self._read(time.monotonic() + deadline_s)

    def close(self) -> None:
        """Stop the worker (SIGKILL: it holds nothing worth keeping) and reap it."""
        with self._lock:
            proc, self._proc = self._proc, None
            self._reader = FrameReader()
            if proc is None:
                return
            proc.kill()
            proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()

    def _started(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self.close()
        self._proc = subprocess.Popen([sys.executable, "-m", "decoders.js.worker"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE)
        if self._read(time.monotonic() + STARTUP_S) != HELLO:
            self.close()
            raise WorkerLost("the JavaScript worker did not start")
        return self._proc

    def _read(self, deadline: float) -> Any:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        fd = proc.stdout.fileno()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.close()
                raise WorkerTimeout("the JavaScript worker did not answer in time and was stopped")
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            data = os.read(fd, 1 << 20)
            if not data:
                self.close()
                raise WorkerLost("the JavaScript worker exited")
            try:
                answers = self._reader.feed(data)
            except FrameError as exc:
                self.close()
                raise WorkerLost(str(exc)) from None
            if answers:
                if len(answers) > 1:
                    self.close()
                    raise WorkerLost("the JavaScript worker answered more than it was asked")
                return answers[0]
