"""Recovery after an outage, and no loss or duplicate rows under combined faults (issue 14, findings 4 and 8).

* A consumer down for a while with a steady stream: once it is back, how long until its backlog is drained
  and until live messages are on time again, with ``options.order`` "fresh-first" (live messages go out at
  once, the backlog drains beside them) and "strict" (arrival order: live messages wait behind the
  backlog). Before: the first probe came only after a cooldown that had doubled through the outage, rows
  waited out their own backoffs, the backlog went out one request at a time, and live messages queued
  behind all of it.
* A long PostgreSQL outage (the connection cut by a proxy, the shared server untouched) while a consumer is
  down, then SIGKILL and a restart: nothing lost.
* SIGKILL while spilling: no (consumer, message) pending twice after the restart.

Real Mosquitto, PostgreSQL and HTTP consumers; ``iotd serve`` as a child process; every message id counted.
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from tests.e2e.fault_kit import (
    first_arrivals,
    ids_in,
    paced_publish,
    pending_duplicates,
    timeline,
)
from tests.e2e.test_ingress_security import DatabaseProxy
from tests.support.broker import MosquittoBroker
from tests.support.receivers import webhook
from tests.support.scenario import FAST_RETRIES, ServiceProcess, provision, settings, uplinks

pytestmark = pytest.mark.slow

ON_TIME_S = 0.5          # a live message arriving later than this after it was published is late
# production-like recovery settings, with times shortened: a 0.5 s base cooldown (doubling while probes
# fail) and retries whose backoff grows up to 30 s during the outage
RECOVERY = {"retry_poll_s": 0.2, "retry_base_s": 0.5, "retry_max_backoff_s": 30, "circuit_threshold": 3,
            "circuit_cooldown_s": 0.5, "circuit_backlog_probe_s": 1.0, "drain_timeout_s": 3}


def recovery_times(sent_at: dict[str, float], arrived: dict[str, float], back_at: float) -> tuple[float, float]:
    """(seconds from the consumer's return until everything published before it arrived, seconds until live
    messages are on time again: the arrival of the first message after which every later one was on time)."""
    before = [m for m, t in sent_at.items() if t < back_at]
    drained = max(arrived[m] for m in before) - back_at
    live = sorted((t, m) for m, t in sent_at.items() if t >= back_at)
    on_time_from = len(live)
    for i in range(len(live) - 1, -1, -1):
        t, m = live[i]
        if arrived[m] - t > ON_TIME_S:
            break
        on_time_from = i
    assert on_time_from < len(live), "live messages never got on time again"
    t, m = live[on_time_from]
    return max(0.0, drained), max(0.0, arrived[m] - back_at)


@pytest.mark.parametrize("order", ["fresh-first", "strict"])
async def test_recovery_after_an_outage(own_broker: MosquittoBroker, db: str, order: str) -> None:
    rate, before_s, outage_s, after_s = 200, 2.0, 10.0, 12.0
    down = [False]
    async with webhook(status=lambda: 503 if down[0] else 204) as (url, got):
        # strict order needs one request at a time to be exact (at concurrency N, N requests start in order),
        # and batches to drain at more than the stream's rate
        spec = {"kind": "http", "url": url, "options": {"order": order}}
        if order == "strict":
            spec.update(batch_size=50, options={"order": order, "concurrency": 1})
        await provision(db, {"hook": spec})
        proc = ServiceProcess(settings(db, own_broker, **RECOVERY))
        proc.start()
        try:
            await proc.ready()
            messages = uplinks(int(rate * (before_s + outage_s + after_s)))
            sent_at: dict[str, float] = {}
            back_at = [0.0]

            async def outage() -> None:
                await asyncio.sleep(before_s)
                down[0] = True
                await asyncio.sleep(outage_s)
                back_at[0] = time.time()
                down[0] = False

            await asyncio.gather(paced_publish(own_broker.port, messages, rate, sent_at), outage())
            wanted = {m for m, _ in messages}
            await got.wait_for(lambda _: ids_in(got) >= wanted, timeout=60)
            print("\n" + timeline(sent_at, first_arrivals(got), back_at[0] - before_s - outage_s))
            drained, live = recovery_times(sent_at, first_arrivals(got), back_at[0])
            print(f"\n{order}: backlog of {sum(t < back_at[0] for t in sent_at.values())} messages drained "
                  f"{drained:.1f} s after the consumer came back; live messages on time after {live:.1f} s")
            if order == "fresh-first":
                assert live < 3.0, "live messages waited behind the backlog"
            else:
                arrival_order = list(first_arrivals(got))
                assert arrival_order == [m for m, _ in messages], "strict order not kept"
                assert live >= drained - 1.0        # live messages went behind the backlog
            assert drained < 20.0, "the backlog drained slowly"
        finally:
            proc.stop()


async def test_long_database_outage_with_a_consumer_down_then_sigkill_loses_nothing(own_broker: MosquittoBroker,
                                                                                     db: str) -> None:
    host_port = db.rpartition("@")[2].partition("/")[0]
    host, _, port = host_port.partition(":")
    proxy = DatabaseProxy((host, int(port or 5432)))
    await proxy.start()
    down = [True]
    async with webhook(status=lambda: 503 if down[0] else 204) as (down_url, downed), \
            webhook() as (up_url, healthy):
        await provision(db, {"down": {"kind": "http", "url": down_url}, "up": {"kind": "http", "url": up_url}})
        s = settings(db.replace(host_port, f"127.0.0.1:{proxy.port}"), own_broker,
                     **{**FAST_RETRIES, "mqtt_keepalive_s": 5})
        proc = ServiceProcess(s)
        proc.start()
        try:
            await proc.ready()
            messages = uplinks(3000)
            sent_at: dict[str, float] = {}

            async def outage_then_kill() -> None:
                await asyncio.sleep(2.0)
                await proxy.cut()
                # longer than two keepalives: with intake paused (the in-flight cap is reached) a connection
                # that stops answering pings is dropped and the broker redelivers what is in flight
                await asyncio.sleep(2.5 * s.mqtt_keepalive_s)
                proc.kill(signal.SIGKILL)
                await proc.wait()
                await proxy.start()

            await asyncio.gather(paced_publish(own_broker.port, messages, 200, sent_at), outage_then_kill())
            proc.start()
            await proc.ready()
            down[0] = False
            wanted = {m for m, _ in messages}
            await healthy.wait_for(lambda _: ids_in(healthy) >= wanted, timeout=90)
            await downed.wait_for(lambda _: ids_in(downed) >= wanted, timeout=90)
        finally:
            proc.stop()
            await proxy.cut()


async def test_sigkill_while_spilling_leaves_no_duplicate_pending_rows(own_broker: MosquittoBroker, db: str) -> None:
    down = [True]
    async with webhook(status=lambda: 503 if down[0] else 204) as (url, got):
        await provision(db, {"hook": {"kind": "http", "url": url}})
        proc = ServiceProcess(settings(db, own_broker, **FAST_RETRIES))
        proc.start()
        try:
            await proc.ready()
            messages = uplinks(6000)
            sent_at: dict[str, float] = {}

            async def kill_while_spilling() -> None:
                while (await pending_duplicates(db))[0] < 1500:
                    await asyncio.sleep(0.05)
                proc.kill(signal.SIGKILL)
                await proc.wait()

            await asyncio.gather(paced_publish(own_broker.port, messages, 3000, sent_at), kill_while_spilling())
            proc.start()                         # the broker redelivers what was not acknowledged
            await proc.ready()
            async with asyncio.timeout(60):
                while (await pending_duplicates(db))[0] < len(messages) and not (await pending_duplicates(db))[1]:
                    await asyncio.sleep(0.2)
            rows, extra = await pending_duplicates(db)
            assert extra == 0, f"{extra} of {rows} pending rows are duplicates"
            down[0] = False
            wanted = {m for m, _ in messages}
            await got.wait_for(lambda _: ids_in(got) >= wanted, timeout=90)
        finally:
            proc.stop()
