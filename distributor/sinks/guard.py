"""Connect-time enforcement of ``registry.targets``: sinks only ever connect to addresses it allows.

The check runs on the address a socket is about to connect to, after DNS, so neither a hostname
that resolves to an internal address nor one whose answer changes after the API checked it (DNS
rebinding) gets through:

* HTTP (aiohttp): ``GuardedResolver`` drops refused addresses from every lookup (a name with public
  and private addresses uses only the public ones; one with none left fails as "target address not
  allowed"), and ``guarded_socket_factory`` refuses to create a socket for a refused address: it
  also covers literal IP hosts, which aiohttp never hands to the resolver. Redirects are not followed
  and no proxy from the environment is used (``trust_env`` stays off).
* MQTT: ``checked_address`` resolves the broker's name, returns the first allowed address and the
  sink connects to exactly that address; ``named_tls_context`` keeps verifying the certificate (and
  sending SNI) for the hostname.

Residual window: none for the address connected to; an HTTP keep-alive connection opened while an
address was allowed stays open if the operator then narrows ``IOTD_CONSUMER_ALLOWED_NETWORKS``
(until the sink restarts with the consumer or the service).

``failure_class`` turns connection errors into the reason classes tenants see in the delivery log,
never a host, port or OS error text.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

from aiohappyeyeballs import AddrInfoType, SocketFactoryType
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from registry.targets import REFUSED, TargetPolicy, TargetRefused, parse_address

DNS_TIMEOUT_S = 10.0


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, keeping only the addresses the policy allows."""

    def __init__(self, policy: TargetPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        allowed = [r for r in found if self._policy.allows(r["host"])]
        if not allowed:
            raise TargetRefused()
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def guarded_socket_factory(policy: TargetPolicy) -> SocketFactoryType:
    """A socket factory for aiohttp that refuses to create a socket for an address the policy refuses."""

    def create(addr_info: AddrInfoType) -> socket.socket:
        family, type_, proto, _, address = addr_info
        if not policy.allows(str(address[0])):
            raise TargetRefused()
        return socket.socket(family=family, type=type_, proto=proto)

    return create


async def checked_address(policy: TargetPolicy, host: str, port: int, timeout_s: float = DNS_TIMEOUT_S) -> str:
    """The first address of ``host`` the policy allows; ``TargetRefused`` if none, ``socket.gaierror`` if no DNS."""
    literal = parse_address(host)
    if literal is not None:
        candidates = [str(literal)]
    else:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout_s):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        candidates = [str(info[4][0]) for info in infos]
    for address in candidates:
        if policy.allows(address):
            return address
    raise TargetRefused()


class _NamedTls(ssl.SSLContext):
    """A client TLS context that checks the certificate against ``hostname`` whatever address we dialled."""

    hostname: str

    def wrap_bio(self, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, server_side: bool = False,
                 server_hostname: str | bytes | None = None, session: ssl.SSLSession | None = None) -> Any:
        return super().wrap_bio(incoming, outgoing, server_side=server_side, server_hostname=self.hostname,
                                session=session)


def named_tls_context(hostname: str, cafile: str | None = None) -> ssl.SSLContext:
    """Verifying TLS (system CAs, or ``cafile``) for ``hostname`` when connecting to one of its addresses."""
    context = _NamedTls(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        context.load_verify_locations(cafile)
    else:
        context.load_default_certs()
    context.hostname = hostname
    return context


def failure_class(exc: BaseException) -> str:
    """The reason class of a connection failure: what the tenant may know, nothing about our network."""
    if isinstance(exc, TargetRefused):
        return REFUSED
    if isinstance(exc, socket.gaierror):
        return "DNS lookup failed"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return "TLS error"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionResetError | ConnectionAbortedError | BrokenPipeError):
        return "connection lost"
    return "cannot connect"
