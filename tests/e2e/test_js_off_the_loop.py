"""Issue 13, finding 4: a registry reload never compiles JavaScript on the event loop, so a decoder whose
top level spins holds nothing but the one worker that loads it, and its uplinks still go out (undecoded).

Before, every reload compiled new or changed decoders in the reload callback, on the loop: a top level
that spins held /healthz, ingest and the API for the whole load limit (2 s) on every rebuild.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.e2e.js_tenants import ingest, js_device, sample_latency, subscribe, summary, tenant
from tests.support.api import Api, running_api
from tests.support.database import create_database, drop_database
from tests.support.receivers import webhook

SPINS_AT_LOAD = "for (;;) {}\nfunction decodeUplink(input) { return { data: { loaded: true } }; }"
GOOD = "function decodeUplink(input) { return { data: { temperature: input.bytes[0] } }; }"


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    url = await create_database("iotd_offloop")
    async with running_api(url, consumer_allowed_networks="127.0.0.0/8", js_workers=2) as a:
        yield a
    await drop_database(url)


async def test_a_top_level_that_spins_does_not_hold_the_loop_on_reload(api: Api) -> None:
    who = await tenant(api, "spinner")
    good = await js_device(api, who, "fine", GOOD)
    assert api.service.pool is not None
    async with webhook() as (url, got), httpx.AsyncClient(base_url=api.base_url, timeout=30) as client:
        await subscribe(api, who, url, [good])
        stop = asyncio.Event()
        health = asyncio.create_task(sample_latency(client, "/healthz", 0.02, stop))
        # The API checks a codec before saving it and refuses this one; an import or an older version can
        # still put one in the registry, so it goes in directly here, and the reload must survive it.
        for n in range(3):  # three reloads, three versions
            await api.service.pool.execute(
                "INSERT INTO js_decoders (id, organization_id, dialect, source) VALUES ('spinner', $1, 'ttn', $2)"
                " ON CONFLICT (id) DO UPDATE SET source = excluded.source, version = js_decoders.version + 1",
                who.org, SPINS_AT_LOAD + f"\n// version {n}")
            await asyncio.sleep(0.3)
        async with api.as_key(who.key) as admin:
            spinner = await api.create("devices", {"application_id": who.app, "name": "spinner", "kind": "http",
                                                   "decoder": "spinner"}, admin)
        async with asyncio.timeout(5):
            while api.service.js_decoders.get("spinner", who.org) is None:
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        took, status = await ingest(client, spinner, b"\x01")  # the worker's load of it spins until its limit
        assert status == 202
        took_good, _ = await ingest(client, good, b"\x02")
        stop.set()
        times = await health
        await got.wait_for(lambda bodies: len(bodies) >= 2, timeout=10)
    print(f"\n/healthz during the reloads and the load: {summary(times)}; the spinning decoder's uplink took "
          f"{took:.2f} s, the other's {took_good:.2f} s")
    assert max(times) < 0.5, summary(times)
    by_name = {body["device"]["name"]: body for body in got.bodies}
    errors = " ".join(by_name["spinner"]["decoder"]["errors"])
    assert by_name["spinner"]["decoder"]["status"] == "error" and ("does not compile" in errors or "timed out" in
                                                                    errors), errors
    assert by_name["fine-device"]["decoder"]["status"] == "ok"


async def test_the_ingest_answer_still_waits_until_the_decoded_message_is_delivered(api: Api) -> None:
    """Ack after done holds across the worker: the pipeline's hold is released only after dispatch."""
    who = await tenant(api, "acks")
    device = await js_device(api, who, "acked", GOOD)
    gate = asyncio.Event()
    async with webhook(gate=gate) as (url, got), httpx.AsyncClient(base_url=api.base_url, timeout=30) as client:
        await subscribe(api, who, url, [device])
        pending = asyncio.create_task(ingest(client, device, b"\x07"))
        await asyncio.sleep(0.5)
        assert not pending.done()  # decoded in a worker and handed to the consumer, which has not answered yet
        gate.set()
        _, status = await pending
        await got.wait_for(lambda bodies: len(bodies) >= 1, timeout=10)
    assert status == 202
    assert got.bodies[0]["payload"]["decoded"] == {"temperature": 7} and got.bodies[0]["decoder"]["version"] == "js-1"
