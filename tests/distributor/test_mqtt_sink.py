"""The MQTT sink against the session's real Mosquitto: topics, QoS 1 acks, bounds, broker outages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import orjson
import pytest

from distributor.sinks.base import REPLAY, DeliveryError, Outgoing
from distributor.sinks.mqtt import RECONNECT_DELAY_S, MqttSink, compile_template, render_topic
from registry.records import Consumer
from registry.targets import TargetPolicy
from tests.support.broker import MosquittoBroker, free_port
from tests.support.receivers import topic_subscriber
from tests.support.scenario import LOOPBACK

TEMPLATE = "iotd/{organization}/{application}/{device}"
ON_LOOPBACK = TargetPolicy.from_setting(LOOPBACK)       # the test brokers listen on 127.0.0.1


def consumer(url: str, qos: int = 1, timeout_s: float = 5.0) -> Consumer:
    return Consumer(id="c-mqtt", organization_id="o1", name="topic", kind="mqtt", url=url, qos=qos,
                    timeout_s=timeout_s)


def message(n: int, device: str = "dev-1") -> Outgoing:
    return Outgoing(message_id=f"m{n}", body=orjson.dumps({"n": n}),
                    topic_vars={"organization": "city", "application": "air", "device": device})


@pytest.fixture
async def sink(broker: MosquittoBroker) -> AsyncIterator[MqttSink]:
    s = MqttSink(consumer(f"{broker.url}/{TEMPLATE}"), client_id=f"test-sink-{time.monotonic_ns()}",
                 policy=ON_LOOPBACK)
    await s.start()
    yield s
    await s.close()


@pytest.fixture
def acl_broker() -> Iterator[MosquittoBroker]:
    """A second broker whose ACL lets anonymous clients write only under iotd/."""
    b = MosquittoBroker()
    acl = b.dir / "acl"
    acl.write_text("topic readwrite iotd/#\n")
    b.conf.write_text(b.conf.read_text() + f"acl_file {acl}\n")
    b.start()
    yield b
    b.close()


def test_templates_fill_and_sanitize_values() -> None:
    parts = compile_template(TEMPLATE + "/{dev_eui}")
    topic = render_topic(parts, {"organization": "a/b", "application": "x+y", "device": "#", "dev_eui": ""})
    assert topic == "iotd/a_b/x_y/_/unknown"
    for bad in ("", "iotd/+/x", "iotd/#"):
        with pytest.raises(ValueError):
            compile_template(bad)


async def test_a_qos1_batch_arrives_on_its_topics(broker: MosquittoBroker, sink: MqttSink) -> None:
    async with topic_subscriber(broker.port, "iotd/#") as got:
        await sink.send([message(i, device=f"dev-{i}") for i in range(3)])
        await got.wait_for(lambda bodies: len(bodies) >= 3)
    assert sorted(got.topics) == [f"iotd/city/air/dev-{i}" for i in range(3)]
    assert sorted(b["n"] for b in got.bodies) == [0, 1, 2]


async def test_a_replayed_message_carries_its_replay_as_a_user_property(broker: MosquittoBroker,
                                                                         sink: MqttSink) -> None:
    replayed = Outgoing("m9", b'{"n": 9}', {**message(9).topic_vars, REPLAY: "job-1"})
    async with topic_subscriber(broker.port, "iotd/#") as got:
        await sink.send([message(8), replayed])
        await got.wait_for(lambda bodies: len(bodies) >= 2)
    by_id = {h["iotd-message-id"]: h for h in got.headers}
    assert by_id["m8"] == {"iotd-message-id": "m8"}
    assert by_id["m9"] == {"iotd-message-id": "m9", "iotd-replay": "job-1"}


async def test_values_cannot_inject_levels_or_wildcards(broker: MosquittoBroker, sink: MqttSink) -> None:
    async with topic_subscriber(broker.port, "iotd/#") as got:
        await sink.send([message(1, device="evil/+/#")])
        await got.wait_for(lambda bodies: len(bodies) >= 1)
    assert got.topics == ["iotd/city/air/evil____"]


async def test_thousands_of_concurrent_publishes_stay_within_packet_ids(broker: MosquittoBroker,
                                                                       sink: MqttSink) -> None:
    # the test broker's Receive Maximum (1000) is below 3,000: without the window gmqtt raises OverflowError
    async with topic_subscriber(broker.port, "iotd/#") as got:
        batches = [[message(b * 100 + i, device=f"bulk-{b}") for i in range(100)] for b in range(30)]
        await asyncio.gather(*(sink.send(batch) for batch in batches))
        await got.wait_for(lambda bodies: len(bodies) >= 3000, timeout=30)
    assert len({b["n"] for b in got.bodies}) == 3000


async def test_qos0_publishes_without_waiting_for_acks(broker: MosquittoBroker) -> None:
    s = MqttSink(consumer(f"{broker.url}/{TEMPLATE}", qos=0), client_id="test-sink-qos0", policy=ON_LOOPBACK)
    await s.start()
    try:
        async with topic_subscriber(broker.port, "iotd/#") as got:
            await s.send([message(7)])
            await got.wait_for(lambda bodies: len(bodies) >= 1)
        assert got.bodies == [{"n": 7}]
    finally:
        await s.close()


async def test_a_refused_publish_is_a_permanent_failure(acl_broker: MosquittoBroker) -> None:
    s = MqttSink(consumer(f"{acl_broker.url}/{{application}}/x"), client_id="test-sink-acl", policy=ON_LOOPBACK)
    await s.start()
    try:
        with pytest.raises(DeliveryError) as err:  # Mosquitto 2 answers a denied QoS 1 publish with PUBACK 0x87
            await s.send([Outgoing("m1", b"{}", {"application": "denied"})])
        assert err.value.retryable is False and err.value.status == 0x87
        await s.send([Outgoing("m2", b"{}", {"application": "iotd"})])  # the connection is still usable
    finally:
        await s.close()


async def test_a_stopped_broker_fails_fast_and_the_sink_reconnects(broker: MosquittoBroker, sink: MqttSink) -> None:
    await sink.send([message(0)])
    await asyncio.to_thread(broker.stop)
    try:
        started = time.monotonic()
        with pytest.raises(DeliveryError) as err:
            for _ in range(100):  # until the client notices the socket closed
                await sink.send([message(1)])
                await asyncio.sleep(0.05)
        assert err.value.retryable is True
        assert time.monotonic() - started < 5.0
    finally:
        await asyncio.to_thread(broker.start)
    async with asyncio.timeout(15):
        while True:
            try:
                await sink.send([message(2)])
                break
            except DeliveryError:
                await asyncio.sleep(0.2)


async def test_an_unreachable_broker_does_not_fail_start_and_is_connected_later() -> None:
    port = free_port()
    s = MqttSink(consumer(f"mqtt://127.0.0.1:{port}/{TEMPLATE}", timeout_s=0.5), client_id="test-sink-down",
                 policy=ON_LOOPBACK)
    await s.start()
    late = MosquittoBroker(port=port)
    try:
        with pytest.raises(DeliveryError, match=r"^connection refused$") as err:  # the reason class
            await s.send([message(1)])
        assert err.value.retryable is True
        await asyncio.to_thread(late.start)
        async with asyncio.timeout(15):
            while True:
                try:
                    await s.send([message(2)])
                    break
                except DeliveryError:
                    await asyncio.sleep(0.2)
    finally:
        await s.close()
        late.close()


async def test_closing_while_reconnecting_stays_closed() -> None:
    # gmqtt's own disconnect() lets a reconnect that is sleeping out its delay connect again afterwards
    b = MosquittoBroker()
    b.start()
    try:
        s = MqttSink(consumer(f"{b.url}/{TEMPLATE}"), client_id="test-sink-close", policy=ON_LOOPBACK)
        await s.start()
        inner = s._client
        assert inner is not None
        await asyncio.to_thread(b.stop)
        await asyncio.sleep(0.3)
        await s.close()
        await asyncio.to_thread(b.start)
        await asyncio.sleep(RECONNECT_DELAY_S + 1)
        assert not inner.is_connected
    finally:
        b.close()
