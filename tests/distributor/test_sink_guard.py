"""Connect-time enforcement of where consumers may point (``distributor.sinks.guard``), on real sockets:
the HTTP sink against aiohttp servers, the MQTT sink against the session's Mosquitto, TLS on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from distributor.service import UnusableSink, default_sink_factory
from distributor.sinks.base import DeliveryError, Outgoing
from distributor.sinks.guard import GuardedResolver, checked_address, named_tls_context
from distributor.sinks.http import HttpSink
from distributor.sinks.mqtt import MqttSink
from registry.records import Consumer
from registry.targets import TargetPolicy, TargetRefused
from tests.support.broker import MosquittoBroker, free_port
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


class FixedResolver(AbstractResolver):
    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        return [ResolveResult(hostname=host, host=a, port=port, family=socket.AF_INET, proto=0, flags=0)
                for a in self.addresses]

    async def close(self) -> None:
        return None


async def test_the_resolver_drops_refused_addresses_and_refuses_a_name_with_none_left() -> None:
    mixed = GuardedResolver(STRICT, FixedResolver("10.0.0.7", "93.184.215.14", "169.254.169.254"))
    assert [r["host"] for r in await mixed.resolve("example.test", 443)] == ["93.184.215.14"]
    internal = GuardedResolver(STRICT, FixedResolver("127.0.0.1", "192.168.1.2"))
    with pytest.raises(TargetRefused):
        await internal.resolve("rebinding.test", 80)


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
def certificate(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A self-signed certificate for the name broker.iotd.test (and no IP address)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "broker.iotd.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("broker.iotd.test")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    yield cert_file, key_file


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
