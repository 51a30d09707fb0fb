"""A webhook consumer in a process of its own (so it never shares the service's CPU), for the harness:
``python -m tests.perf.receiver EXPECTED``. It prints ``ready <port>``, then, once ``EXPECTED`` distinct
message ids have arrived (single messages or batches as JSON arrays), one JSON line with the time
the last one arrived, the distinct count and the total count; it answers 204 until it is terminated.
"""

from __future__ import annotations

import asyncio
import sys
import time

import orjson
from aiohttp import web


async def serve(expected: int) -> None:
    seen: set[str] = set()
    total = 0
    reported = False

    async def handle(request: web.Request) -> web.Response:
        nonlocal total, reported
        body = orjson.loads(await request.read())
        for message in body if isinstance(body, list) else (body,):
            seen.add(message["id"])
            total += 1
        if not reported and len(seen) >= expected:
            reported = True
            print(orjson.dumps({"at": time.time(), "distinct": len(seen), "total": total}).decode(), flush=True)
        return web.Response(status=204)

    app = web.Application(client_max_size=64 * 2**20)
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(f"ready {port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
