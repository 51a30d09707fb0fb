"""A copy of an unfinished message is never acknowledged before its first copy is done, and de-duplication
neither drops real data nor misses copies (issue 14, findings 1 and 5).

Real parts: Mosquitto processes, PostgreSQL, HTTP receivers, `iotd serve` as a child process for the SIGKILL
scenarios. Every scenario counts message ids: zero lost, duplicates bounded and explained.

Before: ``Pipeline._handle`` dropped a duplicate at once and its hold was released, so the source acked it
(MQTT PUBACK, HTTP 2xx) while the first copy was still held; a SIGKILL then lost the message (the broker or
the client had been told it was done). The frame window dropped a counter reset with new data, and the same
frame under two deduplicationIds got two message ids.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import httpx

from distributor.demo_feed import to_json, uplink_event
from distributor.envelope import message_id
from distributor.service import Service
from registry import store
from registry.db import create_pool
from registry.installation import open_secret_box
from tests.e2e.js_tenants import js_device, subscribe, tenant
from tests.support.api import running_api
from tests.support.broker import MosquittoBroker
from tests.support.database import create_database, drop_database
from tests.support.receivers import Received, webhook
from tests.support.scenario import (
    EUI,
    FAST_RETRIES,
    SECRET_KEY,
    ServiceProcess,
    Tenant,
    provision,
    publish_all,
    settings,
    uplink_id,
    uplinks,
)

TOKEN = "chirpstack-token-for-duplicate-tests-0123"
LANE_CONCURRENCY = 8     # an HTTP consumer's default workers: requests a killed instance may have left at the consumer
HELD = {"lane_max_wait_s": 300.0}   # keep messages at the gated consumer (not handed to the spill) for these tests


def ids_of(bodies: list[dict[str, object]]) -> set[object]:
    return {b["id"] for b in bodies}


async def metric(client: httpx.AsyncClient, name: str) -> float:
    """The sum of a metric's samples on the service's /metrics."""
    text = (await client.get("/metrics")).text
    return sum(float(v) for v in re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.MULTILINE))


async def until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not await check():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


async def all_arrive(got: Received, expected: set[str], timeout: float, why: str) -> None:
    try:
        await got.wait_for(lambda b: ids_of(b) >= expected, timeout=timeout)
    except TimeoutError:
        missing = expected - ids_of(got.bodies)
        raise AssertionError(f"lost {len(missing)} of {len(expected)} messages: {why}") from None


def assert_duplicates_bounded(got: Received, expected: set[str], bound: int, explanation: str) -> None:
    delivered = [b["id"] for b in got.bodies]
    extra = len(delivered) - len(set(delivered))
    assert set(delivered) == expected, f"{len(set(delivered) - expected)} unexpected ids"
    assert extra <= bound, f"{extra} duplicates, more than {bound}: {explanation}"


# --- finding 1 over MQTT: a broker restart redelivers messages still held, then iotd is killed ----------------
async def test_broker_restart_with_messages_held_then_sigkill_loses_nothing(own_broker: MosquittoBroker,
                                                                            db: str) -> None:
    n = 300
    gate = asyncio.Event()
    async with webhook(gate=gate) as (url, got):
        await provision(db, {"hook": {"kind": "http", "url": url, "timeout_s": 120}})
        proc = ServiceProcess(settings(db, own_broker, **FAST_RETRIES, **HELD))
        proc.start()
        try:
            await proc.ready()
            messages = uplinks(n)
            expected = {m for m, _ in messages}
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{proc.port}", timeout=10) as client:
                await publish_all(own_broker.port, [b for _, b in messages], window=50)
                await until(lambda: _at_least(client, "iotd_in_flight", n), 30, f"{n} messages held in flight")
                own_broker.restart()   # the broker redelivers the whole unacked window to the resumed session
                await until(lambda: _at_least(client, "iotd_duplicates_total", n), 30, "the redelivered copies")
                await asyncio.sleep(0.3)   # an ack of a copy, had one been sent, would reach the broker now
            proc.kill()
            await proc.wait()
            gate.set()
            proc.start()   # same client id: the broker redelivers whatever was never acknowledged
            await proc.ready()
            await all_arrive(got, expected, 60, "redelivered copies were acknowledged as duplicates while their "
                                                "first copy was still held, then the instance was killed")
            await asyncio.sleep(0.5)
            assert_duplicates_bounded(
                got, expected, LANE_CONCURRENCY,
                "only requests the killed instance had already sent (and the gated consumer then completed) may "
                "arrive twice: every message comes back once from the broker after the restart")
        finally:
            gate.set()
            proc.stop()


async def _at_least(client: httpx.AsyncClient, name: str, value: float) -> bool:
    try:
        return await metric(client, name) >= value
    except httpx.HTTPError:
        return False


# --- finding 1 over HTTP: a resend with the same key before the first answer, then iotd is killed ---------------
Post = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


async def resend_before_the_answer_then_sigkill(proc: ServiceProcess, got: Received, gate: asyncio.Event, n: int,
                                                post: Post, ids: list[str]) -> None:
    """Send n messages (held at the gated consumer), resend each before its answer, SIGKILL, restart, and resend
    what was not answered 2xx, as a client that wants its data kept does."""
    answered: set[int] = set()

    async def send(client: httpx.AsyncClient, i: int) -> None:
        try:
            r = await post(client, i)
        except httpx.HTTPError:
            return
        if 200 <= r.status_code < 300:
            answered.add(i)

    limits = httpx.Limits(max_connections=3 * n)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{proc.port}", timeout=60, limits=limits) as client:
        first = [asyncio.create_task(send(client, i)) for i in range(n)]
        await until(lambda: _at_least(client, "iotd_received_total", n), 20, "the first copies")
        resent = [asyncio.create_task(send(client, i)) for i in range(n)]
        await until(lambda: _at_least(client, "iotd_duplicates_total", n), 20, "the resent copies")
        await asyncio.sleep(0.5)
        assert not answered, (f"{len(answered)} resends were answered 2xx while their first copy was still held at "
                              "the consumer: a crash now would lose them")
        proc.kill()
        await proc.wait()
        await asyncio.gather(*first, *resent)
    gate.set()
    proc.start()
    await proc.ready()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{proc.port}", timeout=60, limits=limits) as client:
        await asyncio.gather(*(send(client, i) for i in range(n) if i not in answered))
    assert len(answered) == n
    await all_arrive(got, set(ids), 30, "a resend was answered before its first copy was done")
    await asyncio.sleep(0.3)
    assert_duplicates_bounded(got, set(ids), LANE_CONCURRENCY,
                              "only requests the killed instance had already sent to the gated consumer may "
                              "arrive twice: the client resends everything else once")


async def test_device_resend_with_the_same_idempotency_key_then_sigkill_loses_nothing(own_broker: MosquittoBroker,
                                                                                      db: str) -> None:
    n = 100
    gate = asyncio.Event()
    async with webhook(gate=gate) as (url, got):
        tenant_ = await provision(db, {"hook": {"kind": "http", "url": url, "timeout_s": 120}})
        device, key = await http_device(db, tenant_)
        proc = ServiceProcess(settings(db, own_broker, **FAST_RETRIES, **HELD))
        proc.start()
        try:
            await proc.ready()

            def post(client: httpx.AsyncClient, i: int) -> Awaitable[httpx.Response]:
                return client.post("/ingest/http", content=i.to_bytes(2, "big"),
                                   headers={"X-API-Key": key, "Idempotency-Key": f"reading-{i}",
                                            "Content-Type": "application/octet-stream"})

            ids = [message_id(f"http:{device}:reading-{i}") for i in range(n)]
            await resend_before_the_answer_then_sigkill(proc, got, gate, n, post, ids)
        finally:
            gate.set()
            proc.stop()


async def test_chirpstack_http_resend_with_the_same_deduplication_id_then_sigkill_loses_nothing(
        own_broker: MosquittoBroker, db: str) -> None:
    n = 100
    gate = asyncio.Event()
    async with webhook(gate=gate) as (url, got):
        await provision(db, {"hook": {"kind": "http", "url": url, "timeout_s": 120}})
        proc = ServiceProcess(settings(db, own_broker, **FAST_RETRIES, **HELD, chirpstack_http_token=TOKEN))
        proc.start()
        try:
            await proc.ready()
            messages = uplinks(n)

            def post(client: httpx.AsyncClient, i: int) -> Awaitable[httpx.Response]:
                return client.post("/ingest/chirpstack?event=up", content=messages[i][1],
                                   headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})

            await resend_before_the_answer_then_sigkill(proc, got, gate, n, post, [m for m, _ in messages])
        finally:
            gate.set()
            proc.stop()


async def http_device(database_url: str, tenant_: Tenant) -> tuple[str, str]:
    """An HTTP device (no decoder) in the scenario's application, so the scenario's consumers get its data."""
    pool = await create_pool(database_url)
    try:
        async with pool.acquire() as conn:
            box = await open_secret_box(conn, SECRET_KEY)
            device, key = await store.create_device(conn, box, application_id=tenant_.application, name="meter",
                                                    kind="http")
    finally:
        await pool.close()
    assert key is not None
    return device, key


# --- finding 1, a JavaScript-decoded uplink: its continuation releases later ----------------------------------
SLOW_CODEC = ("function decodeUplink(input) { var t = Date.now(); while (Date.now() - t < 400) {} "
              "return { data: { value: input.bytes[0] } }; }")


async def test_a_copy_of_an_uplink_in_a_javascript_worker_is_answered_only_after_it() -> None:
    url = await create_database("iotd_dups_js")
    try:
        async with running_api(url, js_workers=1) as api, webhook() as (hook, got):
            who = await tenant(api, "slow-js")
            device = await js_device(api, who, "slow", SLOW_CODEC, timeout_ms=3000)
            await subscribe(api, who, hook, [device])
            headers = {"X-API-Key": device["ingest_key"], "Idempotency-Key": "k-1",
                       "Content-Type": "application/octet-stream"}
            answered: dict[str, float] = {}
            async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as client:

                async def send(name: str, delay: float) -> int:
                    await asyncio.sleep(delay)
                    r = await client.post("/ingest/http", content=b"\x07", headers=headers)
                    answered[name] = time.monotonic()
                    return r.status_code

                codes = await asyncio.gather(send("first", 0), send("copy", 0.1))
            assert codes == [202, 202]
            # both answers go out in the same loop turn; which one the client reads first is a matter of microseconds
            assert answered["copy"] >= answered["first"] - 0.1, (
                f"the copy was answered {answered['first'] - answered['copy']:.3f} s before its first copy left the "
                "JavaScript worker (which takes 0.4 s)")
            await got.wait_for(lambda b: len(b) >= 1)
            await asyncio.sleep(0.3)
            assert [b["payload"]["decoded"] for b in got.bodies] == [{"value": 7}]
    finally:
        await drop_database(url)


# --- finding 5: a counter reset is delivered; one frame, one id, on every instance -----------------------------
def elsys(temperature_tenths: int) -> bytes:
    return bytes([0x01]) + temperature_tenths.to_bytes(2, "big")


async def test_a_counter_reset_within_the_window_is_delivered_and_one_frame_has_one_id(
        own_broker: MosquittoBroker, db: str) -> None:
    n = 200
    async with webhook() as (url, got):
        await provision(db, {"hook": {"kind": "http", "url": url}})
        service = Service(settings(db, own_broker, **FAST_RETRIES))
        await service.start()
        try:
            before = [to_json(uplink_event(dev_eui=EUI, data=elsys(200 + i), f_cnt=i)) for i in range(n)]
            after = [to_json(uplink_event(dev_eui=EUI, data=elsys(400 + i), f_cnt=i)) for i in range(n)]  # reset
            await publish_all(own_broker.port, before + after, window=20)
            expected = {uplink_id(b) for b in before + after}
            assert len(expected) == 2 * n
            await all_arrive(got, expected, 30, "a frame with a reused counter but new data was dropped as a copy")

            # the same frame as two events (two ChirpStack replicas: two deduplicationIds, time 40 ms apart)
            when = datetime.now(UTC).replace(second=3, microsecond=0)
            replica_a = to_json(uplink_event(dev_eui=EUI, data=elsys(999), f_cnt=5000, when=when))
            replica_b = to_json(uplink_event(dev_eui=EUI, data=elsys(999), f_cnt=5000,
                                             when=when.replace(microsecond=40_000)))
            marker = to_json(uplink_event(dev_eui=EUI, data=elsys(1), f_cnt=5001))
            await publish_all(own_broker.port, [replica_a, replica_b, marker])
            await all_arrive(got, {uplink_id(marker)}, 10, "the marker")
            await asyncio.sleep(0.2)
            frame_copies = [b for b in got.bodies if b["network"]["f_cnt"] == 5000]
            assert len(frame_copies) == 1, "within the window the same frame is delivered once"
            first_id = frame_copies[0]["id"]
            assert first_id == uplink_id(replica_a) == uplink_id(replica_b)
        finally:
            await service.stop()

        # another instance (or this one after a restart) that gets the other replica's event gives the same id
        again = Service(settings(db, own_broker, **FAST_RETRIES))
        await again.start()
        try:
            await publish_all(own_broker.port, [replica_b])
            await got.wait_for(lambda b: sum(1 for m in b if m["network"]["f_cnt"] == 5000) == 2, timeout=10)
            assert {b["id"] for b in got.bodies if b["network"]["f_cnt"] == 5000} == {first_id}
        finally:
            await again.stop()


# --- the in-progress table is bounded by the sources' in-flight caps --------------------------------------------
async def test_the_in_progress_table_stays_within_the_in_flight_caps(own_broker: MosquittoBroker, db: str) -> None:
    """Every entry is a first copy not yet done, and every such message holds an in-flight place at its source:
    entries <= MQTT messages in flight + HTTP requests in flight (<= IOTD_HTTP_MAX_IN_FLIGHT) at every moment,
    so <= IOTD_MQTT_MAX_IN_FLIGHT + IOTD_HTTP_MAX_IN_FLIGHT while the sources keep to their caps."""
    mqtt_cap, http_cap = 50, 20
    gate = asyncio.Event()
    async with webhook(gate=gate) as (url, _got):
        tenant_ = await provision(db, {"hook": {"kind": "http", "url": url, "timeout_s": 120}})
        _device, key = await http_device(db, tenant_)
        service = Service(settings(db, own_broker, **FAST_RETRIES, **HELD, mqtt_max_in_flight=mqtt_cap,
                                   http_max_in_flight=http_cap))
        await service.start()
        assert service.pipeline is not None and service.source is not None
        table, source = service.pipeline.dedup, service.source
        largest = {"entries": 0, "entries beyond MQTT in flight": 0}
        stop = asyncio.Event()

        async def sample() -> None:
            while not stop.is_set():
                largest["entries"] = max(largest["entries"], table.in_progress)
                beyond = table.in_progress - source.in_flight
                largest["entries beyond MQTT in flight"] = max(largest["entries beyond MQTT in flight"], beyond)
                await asyncio.sleep(0.002)

        sampler = asyncio.create_task(sample())
        try:
            twice = [b for _, b in uplinks(300) for _ in (0, 1)]   # every uplink and a copy of it
            publishing = asyncio.create_task(publish_all(own_broker.port, twice, window=100))
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.http_port}", timeout=60,
                                         limits=httpx.Limits(max_connections=200)) as client:
                posts = [asyncio.create_task(client.post("/ingest/http", content=bytes([i % 40]), headers={
                    "X-API-Key": key, "Idempotency-Key": f"k{i % 40}"})) for i in range(120)]
                await until(_async(lambda: source.in_flight >= mqtt_cap), 20, "the MQTT source at its cap")
                await asyncio.sleep(1.0)
                held = dict(largest)
                gate.set()
                answers = await asyncio.gather(*posts)
            await publishing
            await until(_async(lambda: table.in_progress == 0), 30, "every message done")
        finally:
            gate.set()
            stop.set()
            await sampler
            await service.stop()
        assert all(a.status_code == 202 for a in answers)
        assert held["entries"] > 0 and largest["entries"] <= mqtt_cap + http_cap, (held, largest)
        assert largest["entries beyond MQTT in flight"] <= http_cap, largest
        assert table.in_progress == 0


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def wrapped() -> bool:
        return check()

    return wrapped
