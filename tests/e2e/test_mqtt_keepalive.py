"""The ChirpStack source keeps its broker connection alive while intake is full, and
``iotd_broker_connected`` tells the truth at every moment.

Real Mosquitto per test, the source itself with a stand-in pipeline that holds every message until
the test lets it finish (a consumer that holds messages), keepalive shortened to 2 s.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import aiomqtt
import pytest

from distributor.metrics import Metrics
from distributor.pipeline import Pipeline
from distributor.sources import gmqtt_link as link
from distributor.sources.chirpstack_mqtt import ChirpStackMqttSource
from distributor.uplink import RawUplink
from tests.support.broker import MosquittoBroker
from tests.support.scenario import EUI, publish_all, uplinks

KEEPALIVE = 2.0
TOPIC = f"application/a/device/{EUI}/event/up"


class HoldingPipeline:
    """Records every uplink it is given and keeps it in progress until ``release``."""

    def __init__(self, hold: bool = True) -> None:
        self.hold = hold
        self.seen: list[str] = []
        self.in_progress: list[RawUplink] = []

    def handle(self, up: RawUplink) -> None:
        self.seen.append(up.dedup_key)
        if self.hold:
            self.in_progress.append(up)
        else:
            up.finalizer.release(True)

    def release(self, n: int | None = None) -> None:
        done, self.in_progress = self.in_progress[:n], self.in_progress[len(self.in_progress[:n]):]
        for up in done:
            up.finalizer.release(True)


@pytest.fixture
async def verbose_broker() -> AsyncIterator[MosquittoBroker]:
    b = MosquittoBroker()
    b.conf.write_text(b.conf.read_text() + "log_type all\n")   # PUBACKs and PINGs in its log
    b.start()
    yield b
    b.close()


def connected_metric(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value("iotd_broker_connected")


async def started(broker: MosquittoBroker, pipeline: HoldingPipeline, metrics: Metrics, client_id: str,
                  max_in_flight: int) -> ChirpStackMqttSource:
    source = ChirpStackMqttSource(broker.url, client_id, cast(Pipeline, pipeline), metrics,
                                  max_in_flight=max_in_flight, keepalive_s=KEEPALIVE)
    await source.start()
    return source


def count_pingresps(source: ChirpStackMqttSource) -> list[float]:
    """Times at which the source read a PINGRESP (gmqtt looks the handler up on the instance)."""
    handler = source.client._package_handler
    seen: list[float] = []
    original = handler._handle_pingresp_packet

    def counting(cmd: int, packet: bytes) -> None:
        seen.append(time.monotonic())
        original(cmd, packet)

    handler._handler_cache.pop(0xD0, None)
    handler._handle_pingresp_packet = counting
    return seen


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def watch(seconds: float, sample: Callable[[], Any]) -> list[Any]:
    out = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        out.append(sample())
        await asyncio.sleep(0.1)
    return out


def pubacks_logged(broker: MosquittoBroker, client_id: str) -> list[str]:
    log = (broker.dir / "mosquitto.log").read_text(errors="replace")
    return re.findall(rf"Received PUBACK from {client_id} ", log)


async def publish_qos0(port: int, bodies: list[bytes]) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"pub-{uuid.uuid4().hex[:6]}") as client:
        for body in bodies:
            await client.publish(TOPIC, body, qos=0)


async def test_a_full_source_keeps_its_connection_through_several_keepalives(verbose_broker: MosquittoBroker) -> None:
    pipeline, metrics = HoldingPipeline(), Metrics()
    source = await started(verbose_broker, pipeline, metrics, f"iotd-ka-{uuid.uuid4().hex[:6]}", max_in_flight=10)
    try:
        pingresps = count_pingresps(source)
        first = link.current_connection(source.client)
        messages = uplinks(30)
        await publish_all(verbose_broker.port, [b for _, b in messages], window=30)
        await until(lambda: len(pipeline.seen) == 10)
        samples = await watch(4 * KEEPALIVE, lambda: (source.connected, connected_metric(metrics),
                                                      link.current_connection(source.client) is first))
        assert all(s == (True, 1.0, True) for s in samples), "the connection dropped or the metric lied"
        assert len(pingresps) >= 3, f"PINGs were not answered while full: {len(pingresps)} PINGRESPs"
        assert len(pipeline.seen) == 10 and source.in_flight == 10   # nothing redelivered meanwhile
        pipeline.hold = False
        pipeline.release()
        await until(lambda: len(pipeline.seen) == 30)
        await until(lambda: source.in_flight == 0)
        assert sorted(pipeline.seen) == sorted(f"chirpstack:{key}" for key in _dedup_ids(messages))
    finally:
        await source.stop(drain_timeout=2)
    again = HoldingPipeline(hold=False)
    source = await started(verbose_broker, again, Metrics(), source.client._client_id, max_in_flight=10)
    try:
        await asyncio.sleep(1.0)
        assert again.seen == [], "the broker still held messages we had acknowledged"
    finally:
        await source.stop(drain_timeout=1)


async def test_a_broker_beyond_the_receive_maximum_is_held_then_paused_and_the_link_lives(
        verbose_broker: MosquittoBroker) -> None:
    # QoS 0 has no Receive Maximum: the broker sends it all, as Mosquitto < 2.0.13 does with QoS 1 after acks
    pipeline, metrics = HoldingPipeline(), Metrics()
    source = await started(verbose_broker, pipeline, metrics, f"iotd-hold-{uuid.uuid4().hex[:6]}", max_in_flight=5)
    try:
        first = link.current_connection(source.client)
        messages = uplinks(2000)
        await publish_qos0(verbose_broker.port, [b for _, b in messages])
        await until(lambda: source.held >= 5)
        transport = link.transport_of(first)
        assert transport is not None
        await until(lambda: not transport.is_reading())
        samples = await watch(4 * KEEPALIVE, lambda: (source.connected, connected_metric(metrics),
                                                      link.current_connection(source.client) is first))
        assert all(s == (True, 1.0, True) for s in samples)
        # bounded: 5 held, plus what the socket buffers carried when reading stopped (< 500 KB); the rest
        # waits at the broker
        assert len(pipeline.seen) == 5 and source.held <= 5 + 500_000 // len(messages[0][1]), source.held
        pipeline.hold = False
        pipeline.release()
        await until(lambda: len(pipeline.seen) == 2000, timeout=30)
        assert transport.is_reading() and len(set(pipeline.seen)) == 2000
    finally:
        await source.stop(drain_timeout=2)


async def test_mosquitto_overshooting_the_window_is_absorbed_exactly_once(verbose_broker: MosquittoBroker) -> None:
    # Mosquitto 2.0.11 answers each PUBACK with a whole new window; a broker that honours it never overshoots
    pipeline, metrics = HoldingPipeline(), Metrics()
    client_id = f"iotd-over-{uuid.uuid4().hex[:6]}"
    source = await started(verbose_broker, pipeline, metrics, client_id, max_in_flight=5)
    try:
        first = link.current_connection(source.client)
        messages = uplinks(80)
        await publish_all(verbose_broker.port, [b for _, b in messages], window=80)
        await until(lambda: len(pipeline.seen) == 5)
        for _ in range(75):                       # finish one at a time: each PUBACK may release a window
            pipeline.release(1)
            await asyncio.sleep(0.02)
            assert source.in_flight <= 5          # held beyond the cap, never started beyond it
        await until(lambda: len(pipeline.seen) == 80 and source.in_flight == len(pipeline.in_progress))
        pipeline.release()
        await until(lambda: source.in_flight == 0)
        assert len(pipeline.seen) == len(set(pipeline.seen)) == 80
        assert link.current_connection(source.client) is first
    finally:
        await source.stop(drain_timeout=2)
    await until(lambda: len(pubacks_logged(verbose_broker, client_id)) >= 80)   # Mosquitto flushes its log later
    assert len(pubacks_logged(verbose_broker, client_id)) == 80


async def test_an_ack_goes_only_on_the_connection_that_delivered_the_message(
        verbose_broker: MosquittoBroker) -> None:
    pipeline, metrics = HoldingPipeline(), Metrics()
    client_id = f"iotd-conn-{uuid.uuid4().hex[:6]}"
    source = await started(verbose_broker, pipeline, metrics, client_id, max_in_flight=10)
    try:
        (_, body), = uplinks(1)
        await publish_all(verbose_broker.port, [body])
        await until(lambda: len(pipeline.seen) == 1)
        first = link.current_connection(source.client)
        transport = link.transport_of(first)
        assert transport is not None
        transport.abort()                                        # a network blip with the message in progress
        await until(lambda: len(pipeline.seen) == 2 and source.connected)   # the broker sent it again
        pipeline.release(1)                                      # the first copy finishes on the dead connection
        await asyncio.sleep(0.5)
        log = (verbose_broker.dir / "mosquitto.log").read_text(errors="replace")
        assert f"Received PUBACK from {client_id} " not in log, "acked on a connection that did not deliver it"
        pipeline.release()                                       # the second copy acks on its own connection
        await until(lambda: source.in_flight == 0)
        await until(lambda: len(pubacks_logged(verbose_broker, client_id)) >= 1)   # Mosquitto flushes its log later
        await asyncio.sleep(0.3)
        assert len(pubacks_logged(verbose_broker, client_id)) == 1
    finally:
        await source.stop(drain_timeout=2)


async def test_a_killed_broker_shows_0_until_the_source_is_back(verbose_broker: MosquittoBroker) -> None:
    pipeline, metrics = HoldingPipeline(), Metrics()
    source = await started(verbose_broker, pipeline, metrics, f"iotd-kill-{uuid.uuid4().hex[:6]}", max_in_flight=3)
    try:
        await publish_all(verbose_broker.port, [b for _, b in uplinks(6)], window=6)
        await until(lambda: source.in_flight == 3)               # full: the old source stopped reading here
        assert connected_metric(metrics) == 1.0
        assert verbose_broker.proc is not None
        os.kill(verbose_broker.proc.pid, signal.SIGKILL)
        verbose_broker.proc.wait()
        verbose_broker.proc = None
        killed = time.monotonic()
        await until(lambda: connected_metric(metrics) == 0.0, timeout=2)
        assert time.monotonic() - killed < 1.0
        assert set(await watch(2.0, lambda: connected_metric(metrics))) == {0.0}   # down while the broker is
        verbose_broker.start()
        await until(lambda: connected_metric(metrics) == 1.0, timeout=10)
    finally:
        pipeline.release()
        await source.stop(drain_timeout=1)


class FreezableProxy:
    """A TCP relay to the broker whose current connections can be frozen: open, but silent both ways."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.thawed: list[asyncio.Event] = []          # one per relayed connection
        self.writers: list[asyncio.StreamWriter] = []
        self.relays: list[asyncio.Future[Any]] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> FreezableProxy:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for thawed in self.thawed:
            thawed.set()
        for writer in self.writers:
            writer.close()
        await asyncio.wait_for(asyncio.gather(*self.relays, return_exceptions=True), 5)

    def freeze(self) -> None:
        for thawed in self.thawed:
            thawed.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        thawed = asyncio.Event()
        thawed.set()
        self.thawed.append(thawed)
        self.writers += [writer, up_writer]

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    await thawed.wait()
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        relay = asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self.relays.append(relay)
        await relay


async def test_a_silent_link_shows_0_within_one_and_a_half_keepalives_and_reconnects(
        verbose_broker: MosquittoBroker) -> None:
    pipeline, metrics = HoldingPipeline(hold=False), Metrics()
    async with FreezableProxy(verbose_broker.port) as proxy:
        source = ChirpStackMqttSource(f"mqtt://127.0.0.1:{proxy.port}", f"iotd-silent-{uuid.uuid4().hex[:6]}",
                                      cast(Pipeline, pipeline), metrics, keepalive_s=KEEPALIVE)
        await source.start()
        try:
            first = link.current_connection(source.client)
            await asyncio.sleep(KEEPALIVE)
            proxy.freeze()                                      # no FIN, no RST: the link just goes quiet
            await asyncio.sleep(0.2)
            last_heard = time.monotonic() - link.data_age(first)
            await until(lambda: connected_metric(metrics) == 0.0, timeout=3 * KEEPALIVE)
            silent_for = time.monotonic() - last_heard
            assert silent_for <= 1.5 * KEEPALIVE + 0.3, silent_for   # gmqtt alone gives up after 2 keepalives
            await until(lambda: connected_metric(metrics) == 1.0, timeout=10)   # a new connection, relayed
            assert link.current_connection(source.client) is not first
            (_, body), = uplinks(1)
            await publish_all(verbose_broker.port, [body])
            await until(lambda: len(pipeline.seen) == 1)
        finally:
            await source.stop(drain_timeout=1)


def _dedup_ids(messages: list[tuple[str, bytes]]) -> list[str]:
    import orjson

    return [orjson.loads(body)["deduplicationId"] for _, body in messages]
