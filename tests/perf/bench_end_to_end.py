"""Messages per second through the whole service: ChirpStack JSON uplinks published to Mosquitto,
decoded, delivered to a local webhook, acked. ``python -m tests.perf.bench_end_to_end [--messages N]``.

It needs the local PostgreSQL (IOTD_TEST_DATABASE_URL) and Mosquitto binary, like the tests.
The publisher runs in the same process, so the figure is a floor on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
from typing import Any

from distributor.service import Service
from tests.support.broker import MosquittoBroker
from tests.support.database import create_database, drop_database
from tests.support.receivers import webhook
from tests.support.scenario import FAST_RETRIES, provision, publish_all, settings, uplinks


async def run(messages: int = 20_000, concurrency: int = 16) -> dict[str, Any]:
    broker = MosquittoBroker()
    broker.start()
    db = await create_database("iotd_bench")
    try:
        async with webhook() as (url, got):
            await provision(db, {"hook": {"kind": "http", "url": url, "options": {"concurrency": concurrency}}})
            service = Service(settings(db, broker, log_level="warning", **FAST_RETRIES))
            await service.start()
            try:
                bodies = [b for _, b in uplinks(messages)]
                start = time.perf_counter()
                publisher = multiprocessing.get_context("spawn").Process(target=_publish, args=(broker.port, bodies))
                publisher.start()  # its own process: the publisher must not share the service's CPU
                await asyncio.to_thread(publisher.join)
                published = time.perf_counter() - start
                await got.wait_for(lambda b: len(b) >= messages, timeout=max(60, messages / 100))
                elapsed = time.perf_counter() - start
            finally:
                await service.stop()
            ids = {b["id"] for b in got.bodies}
        return {"messages": messages, "distinct_delivered": len(ids), "seconds": round(elapsed, 2),
                "per_second": round(messages / elapsed), "publish_seconds": round(published, 2)}
    finally:
        await drop_database(db)
        broker.close()


def _publish(port: int, bodies: list[bytes]) -> None:
    asyncio.run(publish_all(port, bodies, window=100))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=16, help="webhook workers for the consumer")
    args = parser.parse_args()
    result = asyncio.run(run(args.messages, args.concurrency))
    print(", ".join(f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
