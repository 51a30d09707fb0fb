"""The traffic of issue 16's reference method, made with Mosquitto's own C clients so Python is never the
bottleneck of the measurement: the anchor broker, N ChirpStack v4 JSON uplinks from 4 Elsys devices, four
``mosquitto_pub -q 1 -l`` publishers, a ``mosquitto_sub -q 1`` counter, paced publishing for latency and
soak, and the CPU a process used (from /proc/<pid>/stat).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from distributor.demo_feed import to_json, uplink_event
from tests.support.broker import MosquittoBroker
from tests.support.scenario import FRAME, uplink_id

DEVICES = ("a81758fffe0312a1", "a81758fffe0312a2", "a81758fffe0312a3", "a81758fffe0312a4")
PUBLISHERS = 4
UPLINK_TOPIC = "application/a/device/{eui}/event/up"
SUBSCRIBED_S = 0.5    # mosquitto_sub has no "subscribed" signal; this is ample on loopback


def anchor_broker() -> MosquittoBroker:
    """A private broker configured as the reference method says (inflight 100, queue 1,000,000)."""
    broker = MosquittoBroker()
    conf = broker.conf.read_text().replace("max_inflight_messages 1000\n", "max_inflight_messages 100\n")
    broker.conf.write_text(conf)
    broker.start()
    return broker


@dataclass
class Uplinks:
    """Uplinks in publish order (device, one line of ChirpStack JSON) and the message id iotd must give each."""
    sequence: list[tuple[str, bytes]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def by_device(self) -> dict[str, list[bytes]]:
        out: dict[str, list[bytes]] = {eui: [] for eui in DEVICES}
        for eui, line in self.sequence:
            out[eui].append(line)
        return out


class UplinkFactory:
    """Fresh uplinks on every call (frame counters never repeat within a run, so iotd's dedup keeps all)."""

    def __init__(self) -> None:
        self._f_cnt = 1

    def make(self, n: int) -> Uplinks:
        out = Uplinks()
        for i in range(n):
            eui = DEVICES[i % len(DEVICES)]
            body = orjson.dumps(orjson.loads(to_json(uplink_event(dev_eui=eui, data=FRAME, f_cnt=self._f_cnt + i))))
            out.sequence.append((eui, body))
            out.ids.append(uplink_id(body))
        self._f_cnt += n
        return out


def publish(port: int, uplinks: Uplinks) -> None:
    """Four ``mosquitto_pub -q 1 -l`` publishers at full speed, one device each; returns when all are acked."""
    with tempfile.TemporaryDirectory(prefix="iotd-perf-") as tmp:
        procs = []
        for eui, lines in uplinks.by_device().items():
            path = Path(tmp) / eui
            path.write_bytes(b"\n".join(lines) + b"\n")
            with path.open("rb") as stdin:
                procs.append(subprocess.Popen(["mosquitto_pub", "-p", str(port), "-q", "1", "-l", "-t",
                                               UPLINK_TOPIC.format(eui=eui)], stdin=stdin,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        for proc in procs:
            _, err = proc.communicate(timeout=600)
            if proc.returncode != 0:
                raise RuntimeError(f"mosquitto_pub failed: {err.decode(errors='replace')[:300]}")


class Counter:
    """``mosquitto_sub -q 1 -C n`` on a topic; each line's arrival time is taken as it is read."""

    def __init__(self, port: int, topic: str, n: int | None = None, client_id: str | None = None) -> None:
        args = ["mosquitto_sub", "-p", str(port), "-q", "1", "-t", topic]
        if n is not None:
            args += ["-C", str(n)]
        if client_id is not None:
            args += ["-i", client_id]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.lines: list[tuple[float, bytes]] = []
        self._ids: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        time.sleep(SUBSCRIBED_S)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((time.time(), line))

    def wait(self, timeout: float) -> float | None:
        """The time the last expected line arrived, or None when they did not all come in ``timeout`` s."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            return None
        self._reader.join(5)
        return self.lines[-1][0] if self.lines else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        self._reader.join(5)

    def ids(self) -> list[str]:
        """The ``id`` of every iotd message that arrived (one per line; duplicates kept), parsed once each."""
        for _, line in self.lines[len(self._ids):]:
            self._ids.append(orjson.loads(line)["id"])
        return self._ids[:len(self.lines)] if len(self._ids) > len(self.lines) else list(self._ids)


@contextlib.contextmanager
def c_forwarder(port: int, source: str, target: str) -> Iterator[None]:
    """``mosquitto_sub -q 1 | mosquitto_pub -q 1 -l``: the physical limit for a service in the middle."""
    sub = subprocess.Popen(["mosquitto_sub", "-p", str(port), "-q", "1", "-t", source], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL)
    pub = subprocess.Popen(["mosquitto_pub", "-p", str(port), "-q", "1", "-l", "-t", target], stdin=sub.stdout,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert sub.stdout is not None
    sub.stdout.close()   # the pipe now belongs to mosquitto_pub alone
    time.sleep(SUBSCRIBED_S)
    try:
        yield
    finally:
        for proc in (sub, pub):
            proc.terminate()
            proc.wait(5)


class PacedPublisher:
    """Four ``mosquitto_pub -l`` fed through pipes at a fixed rate; the time each line was written is
    its publish time (the pipe adds microseconds, not the milliseconds a latency target is about)."""

    TICK_S = 0.002

    def __init__(self, port: int) -> None:
        self.procs = {eui: subprocess.Popen(["mosquitto_pub", "-p", str(port), "-q", "1", "-l", "-t",
                                             UPLINK_TOPIC.format(eui=eui)], stdin=subprocess.PIPE,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                      for eui in DEVICES}

    def send(self, uplinks: Uplinks, rate: float) -> dict[str, float]:
        """Send everything at ``rate`` messages per second; the publish time of each message id."""
        sent: dict[str, float] = {}
        start = time.perf_counter()
        done = 0
        while done < len(uplinks):
            due = min(len(uplinks), int((time.perf_counter() - start) * rate) + 1)
            for k in range(done, due):
                eui, line = uplinks.sequence[k]
                stdin = self.procs[eui].stdin
                assert stdin is not None
                stdin.write(line + b"\n")
                stdin.flush()
                sent[uplinks.ids[k]] = time.time()
            done = due
            time.sleep(self.TICK_S)
        return sent

    def close(self) -> None:
        for proc in self.procs.values():
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (fields 14 and 15 of /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    """Direct children of a process (``iotd serve --processes N``'s workers)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
