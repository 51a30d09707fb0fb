"""The JavaScript worker process: frames in and out, answers in order and never held behind a slow
request, codecs loaded once per version, and a client whose deadline no JavaScript can outlast."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from decoders.js.wire import HELLO, FrameReader, frame
from decoders.js.worker_client import WorkerProcess, WorkerTimeout

CODEC = """function decodeUplink(input) {
  if (input.bytes[0] === 9) { while (true) {} }
  return { data: { temperature: input.bytes[0] } };
}
function normalizeUplink(input) { return { data: { air: { temperature: input.data.temperature } } }; }"""
UNINTERRUPTIBLE = "function decodeUplink(i) { return { data: { n: new Array(4000000000).join('').length } }; }"


class Worker:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "decoders.js.worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
        self.reader = FrameReader()
        assert self.read(1)[0][1] == HELLO

    def send(self, *messages: Any) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"".join(frame(m) for m in messages))
        self.proc.stdin.flush()
        return time.monotonic()

    def read(self, n: int) -> list[tuple[float, Any]]:
        assert self.proc.stdout is not None
        got: list[tuple[float, Any]] = []
        while len(got) < n:
            data = self.proc.stdout.read1(1 << 16)
            assert data, "the worker exited"
            got += [(time.monotonic(), answer) for answer in self.reader.feed(data)]
        return got


@pytest.fixture
def worker() -> Iterator[Worker]:
    w = Worker()
    yield w
    assert w.proc.stdin is not None
    w.proc.stdin.close()
    assert w.proc.wait(5) == 0  # stdin closed: the worker exits by itself


def decode(n: int, version: int = 1, source: str | None = None, key: str | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {"op": "decode", "c": ["codec", version, key], "p": base64.b64encode(bytes([n])).decode(),
                               "f": 1}
    if source is not None:
        request["s"] = [source, None, 200]
    return request


def test_answers_come_in_order_with_measurements_and_the_codec_loads_once(worker: Worker) -> None:
    worker.send(decode(21, source=CODEC), decode(22), decode(23, key="org-b"))
    answers = [a for _, a in worker.read(3)]
    assert [a["d"] for a in answers] == [{"temperature": 21}, {"temperature": 22}, {"temperature": 23}]
    assert answers[0]["m"] == [["temperature", "Cel", 21]]
    assert [a.get("b", 0) for a in answers] == [1, 0, 1]  # one context per isolation key


def test_a_new_version_replaces_the_old_and_compile_errors_are_answers(worker: Worker) -> None:
    worker.send(decode(1, source=CODEC), decode(1, version=2, source="function decodeUplink( {"), decode(1, version=2),
                decode(1, version=1))
    first, broken, again, old = (a for _, a in worker.read(4))
    assert first["d"] == {"temperature": 1}
    assert broken["e"][0].startswith("the decoder does not compile: SyntaxError") and again == broken
    assert old["e"] == ["the decoder does not compile: the worker was not given version 1 of 'codec'"]


def test_bad_requests_get_errors_and_the_worker_keeps_serving(worker: Worker) -> None:
    worker.send({"op": "dance"}, {"op": "decode"}, decode(5, source=CODEC))
    unknown, broken, fine = (a for _, a in worker.read(3))
    assert unknown == {"error": "unknown request 'dance'"}
    assert broken["e"][0].startswith("internal error in the JavaScript worker: KeyError")
    assert fine["d"] == {"temperature": 5}


@pytest.mark.parametrize(("idle_s", "before"), [(0.0, 1), (0.05, 1), (0.05, 300), (0.0, 300)])
def test_an_answer_is_never_held_behind_a_slow_request(worker: Worker, idle_s: float, before: int) -> None:
    """Whether the flusher was parked (the worker idle a while) or ticking (a stream of requests before)."""
    worker.send(decode(1, source=CODEC))
    worker.read(1)
    time.sleep(idle_s)
    sent = worker.send(*[decode(2)] * before, decode(9), decode(3))  # 9 loops until its 200 ms limit
    *fast, (slow_at, slow), (_, after) = worker.read(before + 2)
    assert all(a["d"] == {"temperature": 2} for _, a in fast)
    assert fast[-1][0] - sent < 0.15, fast[-1][0] - sent
    assert slow["e"] == ["timed out after 200 ms"] and slow["x"] == "timeout" and slow_at - sent >= 0.15
    assert after["d"] == {"temperature": 3}


def test_the_worker_limits_its_address_space(worker: Worker) -> None:
    limits = Path(f"/proc/{worker.proc.pid}/limits").read_text()
    line = next(x for x in limits.splitlines() if x.startswith("Max address space"))
    assert line.split()[3] == str(2 * 1024 ** 3)


def test_check_and_try_requests(worker: Worker) -> None:
    examples = [{"description": "ok", "input": {"fPort": 1, "bytes": [7]}, "output": {"data": {"temperature": 7}}},
                {"description": "bad", "input": {"fPort": 1, "bytes": [7]}, "output": {"data": {"temperature": 8}}}]
    worker.send({"op": "check", "s": [CODEC, None, 100], "examples": examples},
                {"op": "try", "s": [CODEC, None, 100], "p": base64.b64encode(b"\x07").decode(), "f": 1, "v": {}})
    (_, checked), (_, tried) = worker.read(2)
    assert checked == {"dialect": "ttn", "passed": 1, "failures": ["bad: $.data.temperature: expected 8, got 7"],
                       "warnings": []}
    assert tried["data"] == {"temperature": 7} and {"name": "temperature", "unit": "Cel", "value": 7} in \
        tried["measurements"]


def test_the_client_kills_a_worker_that_misses_its_deadline() -> None:
    """What the engine's interrupt cannot stop (a native loop over four billion holes) the deadline does."""
    client = WorkerProcess()
    try:
        tried = {"op": "try", "s": [UNINTERRUPTIBLE, None, 50], "p": "", "f": 1, "v": {}}
        assert client.request({"op": "try", "s": [CODEC, None, 50], "p": "AQ==", "f": 1, "v": {}}, 5)["errors"] == []
        pid = client.pid
        assert pid is not None
        started = time.monotonic()
        with pytest.raises(WorkerTimeout):
            client.request(tried, 0.5)
        assert 0.5 <= time.monotonic() - started < 2.0
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        assert client.request({"op": "try", "s": [CODEC, None, 50], "p": "Ag==", "f": 1, "v": {}}, 5)["data"] == {
            "temperature": 2}
        assert client.pid != pid
    finally:
        client.close()


def test_a_malformed_frame_ends_the_worker_with_one_json_log_line() -> None:
    # the worker shares the service's stderr: its lines must parse like the service's own
    import json

    done = subprocess.run([sys.executable, "-m", "decoders.js.worker"], input=b"\xff\xff\xff\xffgarbage",
                          capture_output=True, timeout=30, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 2
    (line,) = done.stderr.decode().splitlines()
    event = json.loads(line)
    assert event["level"] == "error" and event["logger"] == "iotd.js.worker" and "larger than" in event["error"]
