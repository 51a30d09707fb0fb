"""Connect-time enforcement of ``registry.targets``: sinks only ever connect to addresses it allows.

The check runs on the address a socket is about to connect to, after DNS, so neither a hostname
that resolves to an internal address nor one whose answer changes after the API checked it (DNS
rebinding) gets through:

* HTTP (``distributor.sinks.http_wire``): ``allowed_addresses`` resolves the name (or takes a literal
  address) and drops every refused address (a name with public and private addresses uses only the
  public ones; one with none left fails as "target address not allowed"); the client connects to
  exactly those addresses, with TLS verified for the URL's host. Redirects are not followed and no
  proxy from the environment is used.
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

from registry.targets import REFUSED, TargetPolicy, TargetRefused, parse_address

DNS_TIMEOUT_S = 10.0


async def allowed_addresses(policy: TargetPolicy, host: str, port: int,
                            timeout_s: float = DNS_TIMEOUT_S) -> list[str]:
    """The addresses of ``host`` the policy allows, in DNS order; ``TargetRefused`` if none is,
    ``socket.gaierror`` if the name does not resolve. A literal address is checked as it is."""
    literal = parse_address(host)
    if literal is not None:
        candidates = [str(literal)]
    else:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout_s):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        candidates = list(dict.fromkeys(str(info[4][0]) for info in infos))
    allowed = [address for address in candidates if policy.allows(address)]
    if not allowed:
        raise TargetRefused()
    return allowed


async def checked_address(policy: TargetPolicy, host: str, port: int, timeout_s: float = DNS_TIMEOUT_S) -> str:
    """The first address of ``host`` the policy allows; ``TargetRefused`` if none, ``socket.gaierror`` if no DNS."""
    return (await allowed_addresses(policy, host, port, timeout_s))[0]


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
