"""Mosquitto persistence settings: what each costs in throughput and what a broker crash (SIGKILL) loses.
``python -m tests.perf.bench_broker_persistence [--messages N] [--publishers 4] [--only NAME ...]``
(run on demand; deploy/mosquitto/iotd.conf ships the choice these numbers support).

Mosquitto acknowledges a QoS 1 PUBLISH as soon as it holds it in memory and writes its whole in-memory
database to disk (a new file, fsync, rename) only now and then: every ``autosave_interval`` seconds, or
with ``autosave_on_changes true`` after that many changes (a message queued for an absent client, a
message acknowledged, a (un)subscription, a retained message). A crash loses what changed since the
last save, and a save costs time in proportion to everything the broker holds, in its only thread.

Measured per setting, with ChirpStack-sized JSON uplinks (issue 16's reference method):
* ``live``: ``--publishers`` ``mosquitto_pub -q 1 -l`` publishers to a ``mosquitto_sub -q 1`` subscriber,
  messages per second end to end (median of ``--repeat`` runs);
* ``away``: the same publishers while a persistent subscriber (MQTT v5 session) is away, so every
  message is queued for it (iotd down): messages per second accepted while ``--backlog`` messages pile up,
  and how many saves that took;
* ``lost``: one publisher at a steady rate (1,000/s, a national peak, and 20/s, a quiet city) into the
  away session for 12 s, SIGKILL of the broker right after the last PUBACK, a restart, and the subscriber
  back: accepted messages that never arrived, and how many seconds of traffic that is;
* ``save``: how long one save takes with a given number of queued messages (SIGUSR1 forces it).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from tests.support.broker import MosquittoBroker
from tests.support.scenario import uplinks

TOPIC = "application/a/device/d/event/up"
PHASE_TIMEOUT_S = 300.0
PER_PUBLISHER = 50_000

VARIANTS: dict[str, str] = {
    "persistence off": "persistence false\n",
    "interval 60 s": "autosave_interval 60\n",
    "interval 10 s": "autosave_interval 10\n",
    "interval 5 s": "autosave_interval 5\n",
    "interval 1 s": "autosave_interval 1\n",
    "changes 10000": "autosave_on_changes true\nautosave_interval 10000\n",
    "changes 1000": "autosave_on_changes true\nautosave_interval 1000\n",
    "changes 100": "autosave_on_changes true\nautosave_interval 100\n",
}


SESSION_S = "86400"
RATES = (1000, 20)          # msg/s for the crash-loss runs: a national peak, a quiet city
CRASH_RUN_S = 12.0


@dataclass
class Row:
    variant: str
    live_per_s: float | None = None
    away_per_s: float | None = None
    saves: int = 0
    lost: dict[int, int | None] = field(default_factory=dict)   # rate -> accepted messages lost to SIGKILL


def payloads(n: int) -> list[bytes]:
    """n single-line ChirpStack uplinks (``mosquitto_pub -l`` sends one per line), each with its own id."""
    (_, body), = uplinks(1)
    event = orjson.loads(body)
    template = orjson.dumps(event)
    old = event["deduplicationId"].encode()
    return [template.replace(old, str(uuid.uuid4()).encode()) for _ in range(n)]


def ids_in(lines: bytes) -> set[str]:
    out = set()
    for line in lines.splitlines():
        try:
            out.add(orjson.loads(line)["deduplicationId"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
    return out


def broker_with(extra: str) -> MosquittoBroker:
    broker = MosquittoBroker()
    broker.conf.write_text(broker.conf.read_text() + extra)
    broker.start()
    return broker


def sigkill(broker: MosquittoBroker) -> None:
    assert broker.proc is not None
    os.kill(broker.proc.pid, signal.SIGKILL)
    broker.proc.wait()
    broker.proc = None


def session(client_id: str) -> list[str]:
    return ["-V", "mqttv5", "-c", "-x", SESSION_S, "-i", client_id, "-q", "1", "-t", TOPIC]


def register(broker: MosquittoBroker, client_id: str) -> None:
    """Create the persistent session and leave: from now on everything is queued for it."""
    subprocess.run(["mosquitto_sub", "-p", str(broker.port), *session(client_id), "-E"], check=True, timeout=10,
                   stdout=subprocess.DEVNULL)


def collect(broker: MosquittoBroker, client_id: str, expected: int) -> set[str]:
    got = subprocess.run(["mosquitto_sub", "-p", str(broker.port), *session(client_id), "-C", str(expected),
                          "-W", "10"], capture_output=True, timeout=120)
    return ids_in(got.stdout)


def publish(broker: MosquittoBroker, files: list[Path]) -> float | None:
    """Seconds until every publisher has its PUBACKs (None: not within the phase timeout)."""
    start = time.perf_counter()
    procs = [subprocess.Popen(["mosquitto_pub", "-p", str(broker.port), "-q", "1", "-t", TOPIC, "-l",
                               "-i", f"pub-{k}-{uuid.uuid4().hex[:4]}"], stdin=f.open("rb"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for k, f in enumerate(files)]
    deadline = start + PHASE_TIMEOUT_S
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.perf_counter()))
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
                p.wait()
            return None
    seconds = time.perf_counter() - start
    log = broker.dir / "mosquitto.log"
    if log.exists() and "out of memory" in log.read_text(errors="replace"):
        raise RuntimeError("the broker dropped a publisher (out of memory): the figures would be wrong")
    return seconds


def paced(broker: MosquittoBroker, data: list[bytes], rate: float) -> bool:
    """Publish ``data`` at ``rate`` per second through one publisher; True when every message was acked."""
    proc = subprocess.Popen(["mosquitto_pub", "-p", str(broker.port), "-q", "1", "-t", TOPIC, "-l",
                             "-i", f"paced-{uuid.uuid4().hex[:4]}"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert proc.stdin is not None
    start = time.perf_counter()
    for i, body in enumerate(data):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        proc.stdin.write(body + b"\n")
        proc.stdin.flush()
    proc.stdin.close()
    try:
        return proc.wait(timeout=PHASE_TIMEOUT_S) == 0   # it exits once the last PUBACK is in
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False


def split(data: list[bytes], parts: int, workdir: Path) -> list[Path]:
    """One file per publisher, at most 50,000 lines each: Mosquitto 2.0.11 disconnects a ``mosquitto_pub -l``
    that bursts past ~65,000 messages on one connection ("out of memory"), a limit of this method only."""
    parts = max(parts, -(-len(data) // PER_PUBLISHER))
    files = []
    for k in range(parts):
        path = workdir / f"pub-{k}.txt"
        path.write_bytes(b"\n".join(data[k::parts]) + b"\n")
        files.append(path)
    return files


def saves_in(broker: MosquittoBroker) -> int:
    log = broker.dir / "mosquitto.log"
    return log.read_text(errors="replace").count("Saving in-memory database") if log.exists() else 0


def live(extra: str, data: list[bytes], publishers: int) -> float | None:
    broker = broker_with(extra)
    try:
        files = split(data, publishers, broker.dir)
        out = broker.dir / "sub.out"
        with out.open("wb") as sink:
            sub = subprocess.Popen(["mosquitto_sub", "-p", str(broker.port), "-q", "1", "-t", TOPIC,
                                    "-C", str(len(data)), "-i", f"sub-{uuid.uuid4().hex[:4]}"], stdout=sink,
                                   stderr=subprocess.DEVNULL)
            time.sleep(0.5)
            start = time.perf_counter()
            if publish(broker, files) is None:
                sub.kill()
                return None
            try:
                sub.wait(timeout=PHASE_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                sub.kill()
                return None
            seconds = time.perf_counter() - start
        assert len(ids_in(out.read_bytes())) == len(data)
        return len(data) / seconds
    finally:
        broker.close()


def away(extra: str, data: list[bytes], publishers: int) -> tuple[float | None, int]:
    """(messages/s accepted while all of ``data`` piles up for an absent subscriber, saves meanwhile)."""
    broker = broker_with(extra)
    try:
        register(broker, "away")
        seconds = publish(broker, split(data, publishers, broker.dir))
        return (None if seconds is None else len(data) / seconds), saves_in(broker)
    finally:
        broker.close()


def crash_loss(extra: str, data: list[bytes], rate: float) -> int | None:
    """Accepted messages lost when the broker is SIGKILLed right after the last PUBACK."""
    broker = broker_with(extra)
    try:
        register(broker, "away")
        if not paced(broker, data, rate):
            return None
        sigkill(broker)
        broker.start()
        return len(data) - len(collect(broker, "away", len(data)))
    finally:
        broker.close()


def save_seconds(queued: int, publishers: int) -> tuple[float, int]:
    """(seconds one save takes, bytes of the database) with ``queued`` messages held for an absent client."""
    broker = broker_with("autosave_interval 0\n")   # saves only on SIGUSR1 (and at exit)
    try:
        register(broker, "away")
        publish(broker, split(payloads(queued), publishers, broker.dir))
        db = broker.dir / "mosquitto.db"
        before = db.stat().st_ino if db.exists() else None
        assert broker.proc is not None
        start = time.perf_counter()
        broker.proc.send_signal(signal.SIGUSR1)
        while not db.exists() or db.stat().st_ino == before:   # written to a new file, then renamed
            time.sleep(0.002)
            if time.perf_counter() - start > PHASE_TIMEOUT_S:
                break
        return time.perf_counter() - start, db.stat().st_size
    finally:
        broker.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=20_000, help="messages per live run")
    parser.add_argument("--backlog", type=int, default=200_000, help="messages queued in the away run")
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="live runs per setting (the median is shown)")
    parser.add_argument("--only", nargs="*", choices=list(VARIANTS), help="measure only these settings")
    parser.add_argument("--save-sizes", type=int, nargs="*", default=[20_000, 200_000, 900_000],
                        help="queued messages for the save-duration measurement (none to skip)")
    args = parser.parse_args()
    data = payloads(max(args.messages, args.backlog, int(max(RATES) * CRASH_RUN_S)))
    print(f"ChirpStack uplinks of {len(data[0])} bytes, {args.publishers} publishers, Mosquitto "
          f"{mosquitto_version()}; live: {args.messages} messages, away: {args.backlog} queued")
    print(f"{'setting':<18}{'live msg/s':>12}{'away msg/s':>12}{'saves':>8}"
          + "".join(f"{f'lost at {r}/s':>22}" for r in RATES))
    for name in args.only or VARIANTS:
        extra = VARIANTS[name]
        runs = [live(extra, data[:args.messages], args.publishers) for _ in range(args.repeat)]
        done = sorted(r for r in runs if r is not None)
        row = Row(name, live_per_s=done[len(done) // 2] if done and len(done) == len(runs) else None)
        row.away_per_s, row.saves = away(extra, data[:args.backlog], args.publishers)
        for rate in RATES:
            row.lost[rate] = crash_loss(extra, data[:int(rate * CRASH_RUN_S)], rate)
        lost = "".join(f"{fmt(n) + (f' ({n / r:.1f} s)' if n is not None else ''):>22}"
                       for r, n in row.lost.items())
        print(f"{name:<18}{fmt(row.live_per_s):>12}{fmt(row.away_per_s):>12}{row.saves:>8}{lost}", flush=True)
    for queued in args.save_sizes:
        seconds, size = save_seconds(queued, args.publishers)
        print(f"one save with {queued} queued messages ({size / 1e6:.0f} MB): {seconds:.2f} s", flush=True)


def fmt(value: float | int | None) -> str:
    return "timeout" if value is None else f"{value:,.0f}"


def mosquitto_version() -> str:
    out = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True).stdout
    return out.splitlines()[0].removeprefix("mosquitto version ") if out else "?"


if __name__ == "__main__":
    main()
