"""Connect-time enforcement of where consumers may point (``distributor.sinks.guard``), on real sockets:
the HTTP sink against aiohttp servers, the MQTT sink against the session's Mosquitto, TLS on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio
from aiohttp import web

from distributor.service import UnusableSink, default_sink_factory
from distributor.sinks.base import DeliveryError, Outgoing
from distributor.sinks.guard import allowed_addresses, checked_address, named_tls_context
from distributor.sinks.http import HttpSink
from distributor.sinks.mqtt import MqttSink
from registry.records import Consumer
from registry.targets import TargetPolicy, TargetRefused
from tests.support.broker import MosquittoBroker, free_port
from tests.support.certs import self_signed
from tests.support.receivers import topic_subscriber
from tests.support.scenario import LOOPBACK

STRICT = TargetPolicy()
ON_LOOPBACK = TargetPolicy.from_setting(LOOPBACK)
MESSAGE = Outgoing("m1", orjson.dumps({"n": 1}), {"device": "d"})


@contextlib.asynccontextmanager
async def server() -> AsyncIterator[tuple[int, list[web.Request]]]:
    seen: list[web.Request] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port, seen
    finally:
        await runner.cleanup()


async def http_send(url: str, policy: TargetPolicy) -> DeliveryError | None:
    sink = HttpSink(Consumer(id="c", organization_id="o", name="h", kind="http", url=url, timeout_s=3),
                    policy=policy)
    await sink.start()
    try:
        await sink.send([MESSAGE])
    except DeliveryError as exc:
        return exc
    finally:
        await sink.close()
    return None


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::ffff:127.0.0.1]"])
async def test_http_refuses_loopback_unless_allowed(host: str) -> None:
    async with server() as (port, seen):
        refused = await http_send(f"http://{host}:{port}/hook", STRICT)
        assert refused is not None and refused.detail == "target address not allowed" and refused.retryable
        assert seen == []
        if host != "[::ffff:127.0.0.1]":           # the mapped form needs an IPv6 socket to loopback
            assert await http_send(f"http://{host}:{port}/hook", ON_LOOPBACK) is None
            assert len(seen) == 1


async def test_http_failures_are_reason_classes() -> None:
    unresolvable = await http_send("http://no-such-host.invalid/hook", ON_LOOPBACK)
    assert unresolvable is not None and unresolvable.detail == "DNS lookup failed"
    refused = await http_send(f"http://127.0.0.1:{free_port()}/hook", ON_LOOPBACK)
    assert refused is not None and refused.detail == "connection refused"


@pytest_asyncio.fixture
async def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Names → the addresses "DNS" answers: a stand-in for a resolver (no DNS server here); the sink
    then connects for real to what the guard let through."""
    answers: dict[str, list[str]] = {}
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in answers:
            return await real(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in answers[host]]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    return answers


async def test_the_guard_drops_refused_addresses_and_refuses_a_name_with_none_left(dns: dict[str, list[str]]
                                                                                    ) -> None:
    dns["example.test"] = ["10.0.0.7", "93.184.215.14", "169.254.169.254"]
    dns["rebinding.test"] = ["127.0.0.1", "192.168.1.2"]
    assert await allowed_addresses(STRICT, "example.test", 443) == ["93.184.215.14"]
    with pytest.raises(TargetRefused):
        await allowed_addresses(STRICT, "rebinding.test", 80)


async def test_http_connects_only_to_the_addresses_the_guard_let_through(dns: dict[str, list[str]]) -> None:
    # 10.0.0.7 comes first and is refused; were it dialled, the send would fail or hang (no such host here)
    dns["mixed.iotd.test"] = ["10.0.0.7", "127.0.0.1"]
    async with server() as (port, seen):
        assert await http_send(f"http://mixed.iotd.test:{port}/hook", ON_LOOPBACK) is None
        assert len(seen) == 1 and seen[0].headers["Host"] == f"mixed.iotd.test:{port}"
        dns["inside.iotd.test"] = ["127.0.0.1"]
        refused = await http_send(f"http://inside.iotd.test:{port}/hook", STRICT)
        assert refused is not None and refused.detail == "target address not allowed"
        assert len(seen) == 1


async def test_checked_address_resolves_and_checks() -> None:
    assert await checked_address(ON_LOOPBACK, "localhost", 1883) == "127.0.0.1"
    with pytest.raises(TargetRefused):
        await checked_address(STRICT, "localhost", 1883)
    with pytest.raises(TargetRefused):
        await checked_address(STRICT, "127.1", 1883)         # legacy forms resolve to what they mean
    with pytest.raises(socket.gaierror):
        await checked_address(STRICT, "no-such-host.invalid", 1883)


async def test_mqtt_refuses_a_broker_name_that_resolves_to_loopback_unless_allowed(broker: MosquittoBroker) -> None:
    url = f"mqtt://localhost:{broker.port}/guard/{{device}}"
    consumer = Consumer(id="c-guard", organization_id="o", name="t", kind="mqtt", url=url, timeout_s=2)
    refused = MqttSink(consumer, client_id="guard-refused", policy=STRICT)
    await refused.start()
    try:
        with pytest.raises(DeliveryError, match=r"^target address not allowed$"):
            await refused.send([MESSAGE])
    finally:
        await refused.close()
    allowed = MqttSink(consumer, client_id="guard-allowed", policy=ON_LOOPBACK)
    await allowed.start()
    try:
        async with topic_subscriber(broker.port, "guard/#") as got:
            await allowed.send([MESSAGE])
            await got.wait_for(lambda b: len(b) >= 1)
        assert got.topics == ["guard/d"]
    finally:
        await allowed.close()


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for the name broker.iotd.test (and no IP address)."""
    return self_signed(tmp_path, "broker.iotd.test")


async def test_tls_to_a_checked_address_still_verifies_the_hostname(certificate: tuple[Path, Path]) -> None:
    cert_file, key_file = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_file, key_file)
    names: list[str | None] = []

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hi")
        await writer.drain()
        writer.close()

    def sni(sock: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        names.append(name)

    server_tls.sni_callback = sni
    srv = await asyncio.start_server(greet, "127.0.0.1", 0, ssl=server_tls)
    port = srv.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=named_tls_context("broker.iotd.test", str(cert_file)))
        assert await reader.read() == b"hi"
        writer.close()
        assert names == ["broker.iotd.test"]                # SNI carries the name, not the address
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.open_connection("127.0.0.1", port, ssl=named_tls_context("other.iotd.test",
                                                                                  str(cert_file)))
    finally:
        srv.close()
        await srv.wait_closed()


async def test_a_consumer_no_sink_accepts_gets_a_failing_sink_not_a_dead_dispatcher() -> None:
    # MqttSink refuses a wildcard topic with ValueError; the factory used to let it escape Dispatcher.sync,
    # which then opened no lane for any later consumer (and failed the service's start)
    make = default_sink_factory("test", ON_LOOPBACK)
    bad = make(Consumer(id="c-bad", organization_id="o", name="bad", kind="mqtt", url="mqtt://127.0.0.1:1/a/+/b"))
    assert isinstance(bad, UnusableSink)
    with pytest.raises(DeliveryError, match="invalid consumer configuration") as err:
        await bad.send([MESSAGE])
    assert err.value.retryable
    good = make(Consumer(id="c-good", organization_id="o", name="ok", kind="http", url="http://127.0.0.1:1/x"))
    assert isinstance(good, HttpSink)
