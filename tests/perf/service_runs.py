"""``iotd serve`` as a child process on a database made for the run, and the measurements that need it:
throughput per consumer kind, latency at fixed rates, the soak, and scale-out with ``--processes N``.

Everything here is synchronous: the traffic is Mosquitto's C clients and the service is a process; the
harness only starts things, waits and counts. Each run gets a fresh database (the 4 devices' EUIs are
unique in the registry) and the same anchor broker as the anchors, so the ratios compare like with like.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from registry.api.replays import DEFAULT_RATE, MAX_RATE
from tests.perf.traffic import (
    DEVICES,
    Counter,
    PacedPublisher,
    UplinkFactory,
    Uplinks,
    children,
    cpu_seconds,
    percentile,
    publish,
    rss_mib,
)
from tests.support.api import first_key
from tests.support.broker import MosquittoBroker, free_port
from tests.support.database import create_database, drop_database
from tests.support.scenario import ServiceProcess, provision, settings, until_ready

OUT_TOPIC = "bench/{device}"
MQTT_CONSUMER: dict[str, Any] = {"kind": "mqtt", "url": "mqtt://127.0.0.1:{port}/" + OUT_TOPIC, "qos": 1}
LATENCY_P99_MS = 50.0
CATCH_UP_S = 2.0    # after the last publish, how long delivery may trail before a rate counts as "behind"


@dataclass
class Throughput:
    per_s: float | None          # None: not everything arrived in time
    distinct: int
    duplicates: int
    broker_cores: float          # CPU the broker used, in cores, over the run
    killed: bool = False         # a worker was SIGKILLed mid-run
    stored: int = 0              # messages in the history after the run
    stored_bytes: int = 0        # what the history's partitions take on disk


def timeout_for(n: int) -> float:
    return 30 + n / 500


@contextlib.contextmanager
def provisioned(consumers: dict[str, dict[str, Any]]) -> Iterator[str]:
    """A database made for one run, with the 4 devices and ``consumers``; dropped afterwards."""
    db = asyncio.run(create_database("iotd_perf"))
    try:
        asyncio.run(provision(db, consumers, dev_euis=DEVICES))
        yield db
    finally:
        asyncio.run(drop_database(db))


def stopped(service: ServiceProcess) -> None:
    if service.proc is not None and service.proc.poll() is None:
        service.kill(signal.SIGTERM)
        try:
            service.proc.wait(30)
        except subprocess.TimeoutExpired:
            service.stop()


@contextlib.contextmanager
def iotd(broker: MosquittoBroker, consumers: dict[str, dict[str, Any]], processes: int = 1,
         **overrides: Any) -> Iterator[ServiceProcess]:
    """A running ``iotd serve`` (every process ready) with the 4 devices and ``consumers``."""
    with provisioned(consumers) as db:
        service: ServiceProcess | None = None
        try:
            args = ("--processes", str(processes)) if processes > 1 else ()
            service = ServiceProcess(settings(db, broker, log_level="warning", **overrides), args)
            service.start()
            for k in range(processes):
                asyncio.run(until_ready(service.port + k, 30))
            yield service
        finally:
            if service is not None:
                stopped(service)
                forget_sessions(broker, service.env["IOTD_MQTT_CLIENT_ID"], processes)


@contextlib.contextmanager
def separate_instances(broker: MosquittoBroker, consumers: dict[str, dict[str, Any]], n: int
                       ) -> Iterator[list[ServiceProcess]]:
    """``n`` separately started ``iotd serve`` on one database, members of one share group (as separate
    machines would run them: deploy/README.md, "Shared subscriptions")."""
    with provisioned(consumers) as db:
        group = f"perf-{os.getpid()}-{time.monotonic_ns()}"
        services = [ServiceProcess(settings(db, broker, log_level="warning", mqtt_share_group=group))
                    for _ in range(n)]
        try:
            for service in services:
                service.start()
            for service in services:
                asyncio.run(service.ready(30))
            yield services
        finally:
            for service in services:
                stopped(service)
                forget_sessions(broker, service.env["IOTD_MQTT_CLIENT_ID"], 1)


def forget_sessions(broker: MosquittoBroker, client_id: str, processes: int) -> None:
    """End the persistent sessions a stopped run leaves on the broker. Mosquitto keeps routing a shared
    subscription's share to a member whose session is offline (queued until it returns or expires, a week
    for ``--processes``), so a later run in the same share group would see that share go missing, and a
    lone instance's session would queue a copy of every later message."""
    ids = [client_id] if processes == 1 else [f"{client_id}-{k}" for k in range(processes)]
    for session in ids:   # a clean-session connect with the same client id discards the old session
        subprocess.run(["mosquitto_pub", "-p", str(broker.port), "-i", session, "-t", "perf/forget", "-n"],
                       check=True, capture_output=True, timeout=10)


def mqtt_consumer(broker: MosquittoBroker) -> dict[str, Any]:
    return {**MQTT_CONSUMER, "url": MQTT_CONSUMER["url"].replace("{port}", str(broker.port))}


def measure(broker: MosquittoBroker, uplinks: Uplinks, counter: Counter,
            ids: bool = True) -> Throughput:
    """Publish at full speed and wait for the counter.
    ``ids=False`` counts lines (the anchors carry ChirpStack events, not iotd messages with an id)."""
    assert broker.proc is not None
    cpu = cpu_seconds(broker.proc.pid)
    start = time.time()
    publish(broker.port, uplinks)
    last = counter.wait(timeout_for(len(uplinks)))
    elapsed = (last or time.time()) - start
    broker_cores = (cpu_seconds(broker.proc.pid) - cpu) / elapsed
    got = counter.ids() if ids else [str(i) for i in range(len(counter.lines))]
    return Throughput(len(uplinks) / elapsed if last else None, len(set(got)), len(got) - len(set(got)),
                      broker_cores)


def instances_throughput(broker: MosquittoBroker, factory: UplinkFactory, n: int, instances: int) -> Throughput:
    """ChirpStack uplink → decode → MQTT consumer with ``instances`` separate services sharing the subscription."""
    with separate_instances(broker, {"out": mqtt_consumer(broker)}, instances):
        uplinks = factory.make(n)
        return measure(broker, uplinks, Counter(broker.port, "bench/#", n))


def history_storage(database_url: str) -> tuple[int, int]:
    """(messages stored, bytes the history's partitions take on disk, indexes and TOAST included)."""
    async def query() -> tuple[int, int]:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute("CHECKPOINT")
            rows = await conn.fetchval("SELECT count(*) FROM messages")
            size = await conn.fetchval(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_inherits i"
                " JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent"
                " WHERE p.relname LIKE 'messages\\_r%'")
            return int(rows), int(size)
        finally:
            await conn.close()
    return asyncio.run(query())


def mqtt_throughput(broker: MosquittoBroker, factory: UplinkFactory, n: int, processes: int = 1,
                    kill_one: bool = False, history: bool = True) -> Throughput:
    """ChirpStack uplink → decode → MQTT consumer (QoS 1, acked after done); optionally SIGKILL one of
    ``--processes N``'s workers once half the messages are through (its supervisor restarts it)."""
    with iotd(broker, {"out": mqtt_consumer(broker)}, processes, history=history) as service:
        uplinks = factory.make(n)
        if not kill_one:
            counter = Counter(broker.port, "bench/#", n)
            result = measure(broker, uplinks, counter)
            if history:
                result.stored, result.stored_bytes = history_storage(service.env["IOTD_DATABASE_URL"])
            return result
        counter = Counter(broker.port, "bench/#")   # no -C: duplicates after the kill may come in too
        assert service.proc is not None
        supervisor = service.proc.pid

        killed: list[int] = []

        def kill_mid_run() -> None:
            deadline = time.time() + timeout_for(n)
            while len(counter.lines) < n // 2 and time.time() < deadline:
                time.sleep(0.005)
            workers = children(supervisor)
            if len(workers) > 1:
                os.kill(workers[-1], signal.SIGKILL)
                killed.append(workers[-1])

        cpu = cpu_seconds(broker.proc.pid) if broker.proc else 0.0
        start = time.time()
        side = threading.Thread(target=kill_mid_run, daemon=True)
        side.start()
        publish(broker.port, uplinks)
        side.join(60)
        expected = set(uplinks.ids)
        deadline = time.time() + timeout_for(n)
        while time.time() < deadline and not expected <= set(counter.ids()):
            time.sleep(0.2)
        time.sleep(1.0)   # late duplicates
        counter.stop()
        ids = counter.ids()
        last = counter.lines[-1][0] if counter.lines else time.time()
        broker_cores = (cpu_seconds(broker.proc.pid) - cpu) / (last - start) if broker.proc else 0.0
        return Throughput(n / (last - start), len(set(ids) & expected), len(ids) - len(set(ids)), broker_cores,
                          bool(killed))


def http_throughput(broker: MosquittoBroker, factory: UplinkFactory, n: int, batch_size: int) -> Throughput:
    """ChirpStack uplink → decode → webhook consumer (the product's default concurrency) in its own process."""
    receiver = subprocess.Popen([sys.executable, "-m", "tests.perf.receiver", str(n)], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
    try:
        assert receiver.stdout is not None
        port = int(receiver.stdout.readline().split()[1])
        spec: dict[str, Any] = {"kind": "http", "url": f"http://127.0.0.1:{port}/hook", "batch_size": batch_size}
        if batch_size > 1:
            spec["batch_wait_ms"] = 50
        with iotd(broker, {"hook": spec}):
            uplinks = factory.make(n)
            assert broker.proc is not None
            cpu = cpu_seconds(broker.proc.pid)
            start = time.time()
            publish(broker.port, uplinks)
            done: list[bytes] = []
            reader = threading.Thread(target=lambda: done.append(receiver.stdout.readline()), daemon=True)  # type: ignore[union-attr]
            reader.start()
            reader.join(timeout_for(n))
            if not done or not done[0]:
                return Throughput(None, 0, 0, 0.0)
            result = orjson.loads(done[0])
            elapsed = result["at"] - start
            return Throughput(n / elapsed, result["distinct"], result["total"] - result["distinct"],
                              (cpu_seconds(broker.proc.pid) - cpu) / elapsed)
    finally:
        receiver.terminate()
        receiver.wait(10)


@dataclass
class Latency:
    rate: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    delivered: int
    sent: int

    @property
    def behind(self) -> bool:
        return self.delivered < self.sent

    @property
    def bent(self) -> bool:
        return self.behind or self.p99_ms > LATENCY_P99_MS


def latency_ladder(broker: MosquittoBroker, factory: UplinkFactory, rates: tuple[int, ...], seconds: float,
                   must: tuple[int, ...]) -> list[Latency]:
    """Publish → MQTT consumer latency at each rate in turn; stops at the first rate that bends once every
    rate in ``must`` has been measured."""
    out: list[Latency] = []
    with iotd(broker, {"out": mqtt_consumer(broker)}):
        paced = PacedPublisher(broker.port)
        try:
            factory_warm = factory.make(200)   # connections, first decode, first delivery: not part of a rate
            counter = Counter(broker.port, "bench/#", len(factory_warm))
            paced.send(factory_warm, 2000)
            counter.wait(30)
            for rate in rates:
                uplinks = factory.make(max(50, int(rate * seconds)))
                counter = Counter(broker.port, "bench/#", len(uplinks))
                sent = paced.send(uplinks, rate)
                counter.wait(CATCH_UP_S)
                lat = [(at - sent[mid]) * 1e3 for (at, _), mid in zip(counter.lines, counter.ids(), strict=True)
                       if mid in sent]
                point = Latency(rate, percentile(lat, 0.5), percentile(lat, 0.99), max(lat, default=float("nan")),
                                len(set(counter.ids())), len(uplinks))
                out.append(point)
                if point.bent and all(r <= rate for r in must):
                    break
                if point.behind:
                    time.sleep(CATCH_UP_S * 2)   # let the backlog drain before the next rate
        finally:
            paced.close()
    return out


SOAK_SERIES = ("iotd_pending_deliveries", "iotd_retries_total", "iotd_dead_letters_total", "iotd_spilled_total",
               "iotd_consumer_queue_depth", "python_gc_objects_collected_total")


def service_state(port: int) -> str:
    """What the service says about its backlog, retries and collector (summed over labels), to read the RSS
    curve against: a step in memory next to a change here has its cause named."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError as exc:
        return f"metrics unavailable: {exc}"
    sums: dict[str, float] = {}
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in SOAK_SERIES:
            sums[name] = sums.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return ", ".join(f"{name.removeprefix('iotd_')} {sums[name]:,.0f}" for name in SOAK_SERIES if name in sums)


@dataclass
class Soak:
    sent: int
    delivered: int
    rss_mib: list[tuple[float, float]]    # (seconds since start, RSS of the service)
    achieved_rate: float


def soak(broker: MosquittoBroker, factory: UplinkFactory, seconds: float, rate: int, every_s: float,
         say: Callable[[str], None]) -> Soak:
    """One healthy MQTT consumer and one failing webhook (nothing listens: every message spills and retries)
    at ``rate`` for ``seconds``; the service's RSS every ``every_s``."""
    failing = {"kind": "http", "url": f"http://127.0.0.1:{free_port()}/hook"}
    samples: list[tuple[float, float]] = []
    with iotd(broker, {"healthy": mqtt_consumer(broker), "failing": failing}) as service:
        assert service.proc is not None
        pid = service.proc.pid
        counter = Counter(broker.port, "bench/#")
        paced = PacedPublisher(broker.port)
        sent: list[str] = []
        stop = threading.Event()
        start = time.time()

        def sample() -> None:
            while not stop.wait(every_s):
                rss = rss_mib(pid)
                samples.append((time.time() - start, rss))
                say(f"soak {time.time() - start:6.0f} s: RSS {rss:.1f} MiB, sent {len(sent)}, "
                    f"delivered {len(counter.lines)}; {service_state(service.port)}")

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            chunks: queue.Queue[Uplinks] = queue.Queue(maxsize=2)   # made ahead, so pacing never waits
            chunk_s = min(1.0, seconds)

            def make() -> None:
                while not stop.is_set() and time.time() - start < seconds:
                    chunks.put(factory.make(int(rate * chunk_s)))

            maker = threading.Thread(target=make, daemon=True)
            maker.start()
            while time.time() - start < seconds:
                uplinks = chunks.get(timeout=60)
                paced.send(uplinks, rate)
                sent.extend(uplinks.ids)
            achieved = len(sent) / (time.time() - start)
            expected = set(sent)
            deadline = time.time() + 30
            while time.time() < deadline and len(set(counter.ids())) < len(expected):
                time.sleep(0.2)
        finally:
            stop.set()
            sampler.join(5)
            paced.close()
            counter.stop()
        samples.append((time.time() - start, rss_mib(pid)))
        return Soak(len(sent), len(set(counter.ids()) & set(sent)), samples, achieved)


@dataclass
class ReplayCost:
    stored: int                  # messages in the history, replayed to the MQTT consumer
    replay_per_s: float | None   # the pace of a job at ``fast_rate`` (None: it did not end in time)
    default_rate: int            # the API's default rate limit
    fast_rate: int               # the API's highest rate limit
    alone: Latency               # live latency at the same rate: no replay, a default-rate one, a fastest one
    during_default: Latency
    during_fast: Latency


def _latency_point(broker: MosquittoBroker, paced: PacedPublisher, uplinks: Uplinks, rate: int) -> Latency:
    """Live latency of ``uplinks`` at ``rate``; other messages on the topic (a replay's) are told apart by id."""
    counter = Counter(broker.port, "bench/#")
    sent = paced.send(uplinks, rate)
    deadline = time.time() + CATCH_UP_S
    while time.time() < deadline and not set(sent) <= set(counter.ids()):
        time.sleep(0.05)
    counter.stop()
    lat = [(at - sent[mid]) * 1e3 for (at, _), mid in zip(counter.lines, counter.ids(), strict=True) if mid in sent]
    return Latency(rate, percentile(lat, 0.5), percentile(lat, 0.99), max(lat, default=float("nan")),
                   len({m for m in counter.ids() if m in sent}), len(uplinks))


def _api(port: int, key: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1{path}", method=method,
                                     data=orjson.dumps(body) if body is not None else None,
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return orjson.loads(answer.read())


def replay_cost(broker: MosquittoBroker, factory: UplinkFactory, stored: int, rate: int, seconds: float) -> ReplayCost:
    """Fill the history with ``stored`` messages, then measure live latency at ``rate`` alone, while a replay of
    everything stored runs to the same MQTT consumer at the default rate, and at the highest, whose pace counts."""
    with iotd(broker, {"out": mqtt_consumer(broker)}, replay_settle_s=0.5, replay_poll_s=0.1) as service:
        db = service.env["IOTD_DATABASE_URL"]
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
        measure(broker, factory.make(stored), Counter(broker.port, "bench/#", stored))
        key = asyncio.run(first_key(db))
        consumer = asyncio.run(_first_consumer(db))
        paced = PacedPublisher(broker.port)
        points: list[Latency] = []
        try:
            _latency_point(broker, paced, factory.make(200), 2000)          # warm: not part of a figure
            time.sleep(1)
            for job_rate in (None, DEFAULT_RATE, MAX_RATE):
                job = None
                if job_rate is not None:
                    job = _api(service.port, key, "POST", f"/consumers/{consumer}/replay",
                               {"from": since, "rate": job_rate})
                    time.sleep(0.3)      # claimed and under way
                points.append(_latency_point(broker, paced, factory.make(max(50, int(rate * seconds))), rate))
                if job_rate == DEFAULT_RATE and job is not None:
                    _api(service.port, key, "POST", f"/replays/{job['id']}/cancel")
        finally:
            paced.close()
        assert job is not None
        deadline = time.time() + timeout_for(stored)
        while (state := _api(service.port, key, "GET", f"/replays/{job['id']}"))["state"] in ("queued", "running"):
            if time.time() > deadline:
                break
            time.sleep(0.2)
        per_s = None
        if state["state"] == "done" and state["started_at"] and state["finished_at"]:
            took = _when(state["finished_at"]) - _when(state["started_at"])
            per_s = state["sent"] / took if took > 0 else None
        return ReplayCost(stored, per_s, DEFAULT_RATE, MAX_RATE, *points)


async def _first_consumer(db: str) -> str:
    conn = await asyncpg.connect(db)
    try:
        return str(await conn.fetchval("SELECT id FROM consumers LIMIT 1"))
    finally:
        await conn.close()


def _when(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
