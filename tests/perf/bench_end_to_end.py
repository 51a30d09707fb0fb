"""Messages per second through the whole service: ChirpStack JSON uplinks published to Mosquitto,
decoded and delivered, with ack-after-done. ``python -m tests.perf.bench_end_to_end [--messages N]
[--consumer http|mqtt]``.

The publisher and, for ``mqtt``, the consumer's subscriber run in processes of their own; the
``http`` consumer is an aiohttp server inside this process (so it shares the service's CPU). It
needs the local PostgreSQL (IOTD_TEST_DATABASE_URL) and the Mosquitto binary, like the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import shutil
import subprocess
import time
from typing import Any

import aiomqtt
import orjson

from distributor.service import Service
from tests.support.broker import MosquittoBroker
from tests.support.database import create_database, drop_database
from tests.support.receivers import webhook
from tests.support.scenario import EUI, FAST_RETRIES, provision, publish_all, settings, uplinks

TOPIC = "bench/{device}"


async def run(messages: int = 20_000, concurrency: int = 16, consumer: str = "http") -> dict[str, Any]:
    broker = MosquittoBroker()
    broker.start()
    db = await create_database("iotd_bench")
    try:
        if consumer == "mqtt":
            spec = {"kind": "mqtt", "url": f"mqtt://127.0.0.1:{broker.port}/{TOPIC}", "qos": 1}
            return await _measure(db, broker, spec, messages, None)
        async with webhook() as (url, got):
            spec = {"kind": "http", "url": url, "options": {"concurrency": concurrency}}
            return await _measure(db, broker, spec, messages, got)
    finally:
        await drop_database(db)
        broker.close()


async def _measure(db: str, broker: MosquittoBroker, spec: dict[str, Any], messages: int, got: Any
                   ) -> dict[str, Any]:
    await provision(db, {"consumer": spec})
    service = Service(settings(db, broker, log_level="warning", **FAST_RETRIES))
    await service.start()
    spawn = multiprocessing.get_context("spawn")
    try:
        counted: Any = spawn.Queue()
        subscriber = None
        if got is None:
            subscriber = spawn.Process(target=_subscribe, args=(broker.port, messages, counted))
            subscriber.start()
            await asyncio.to_thread(counted.get, True, 30)   # subscribed
        bodies = [b for _, b in uplinks(messages)]
        start = time.perf_counter()
        await asyncio.to_thread(publish_fast, broker.port, bodies)
        published = time.perf_counter() - start
        if subscriber is not None:
            distinct, finished = await asyncio.to_thread(counted.get, True, max(60, messages / 100))
            subscriber.join()
        else:
            await got.wait_for(lambda b: len(b) >= messages, timeout=max(60, messages / 100))
            distinct, finished = len({b["id"] for b in got.bodies}), time.time()
        elapsed = time.perf_counter() - start - (time.time() - finished)
    finally:
        await service.stop()
    return {"consumer": spec["kind"], "messages": messages, "distinct_delivered": distinct,
            "seconds": round(elapsed, 2), "per_second": round(messages / elapsed),
            "publish_seconds": round(published, 2)}


def publish_fast(port: int, bodies: list[bytes]) -> None:
    """Publish at QoS 1 with Mosquitto's own C client when it is there (one JSON uplink per line), so the
    publisher is not the bottleneck; else with aiomqtt in a process of its own."""
    if shutil.which("mosquitto_pub") is not None:
        lines = [orjson.dumps(orjson.loads(b)) for b in bodies]   # one line each, as ChirpStack sends them
        subprocess.run(["mosquitto_pub", "-p", str(port), "-q", "1", "-l", "-t",
                        f"application/a/device/{EUI}/event/up"], input=b"\n".join(lines) + b"\n", check=True,
                       capture_output=True)
        return
    proc = multiprocessing.get_context("spawn").Process(target=_publish, args=(port, bodies))
    proc.start()
    proc.join()


def _publish(port: int, bodies: list[bytes]) -> None:
    asyncio.run(publish_all(port, bodies, window=100))


def _subscribe(port: int, messages: int, counted: Any) -> None:
    """Count distinct message ids at the consumer's topic: Mosquitto's C client when it is there."""
    if shutil.which("mosquitto_sub") is not None:
        proc = subprocess.Popen(["mosquitto_sub", "-p", str(port), "-q", "1", "-t", "bench/#", "-C", str(messages),
                                 "-i", "bench-sub"], stdout=subprocess.PIPE)
        time.sleep(0.5)   # subscribed (mosquitto_sub has no "ready" signal)
        counted.put("ready")
        assert proc.stdout is not None
        ids = {orjson.loads(line)["id"] for line in proc.stdout}
        proc.wait()
        counted.put((len(ids), time.time()))
        return

    async def listen() -> None:
        ids: set[str] = set()
        async with aiomqtt.Client("127.0.0.1", port, identifier="bench-sub", max_queued_incoming_messages=0) as c:
            await c.subscribe("bench/#", qos=1)
            counted.put("ready")
            async for msg in c.messages:
                ids.add(orjson.loads(bytes(msg.payload))["id"])  # type: ignore[arg-type]
                if len(ids) >= messages:
                    break
        counted.put((len(ids), time.time()))

    asyncio.run(listen())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=16, help="webhook workers for the http consumer")
    parser.add_argument("--consumer", choices=("http", "mqtt"), default="http")
    args = parser.parse_args()
    result = asyncio.run(run(args.messages, args.concurrency, args.consumer))
    print(", ".join(f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
