"""A consumer's URL as the API takes it: its shape, where it points, and how it is stored.

Where it points is checked here only as early feedback (422 saying which setting allows it): a literal
IP host the policy refuses (``registry.targets``), a legacy numeric IPv4 form (``127.1``,
``2130706433``), and a hostname all of whose addresses the policy refuses. A hostname that does not
resolve now is accepted. What is enforced is the connect-time check in the sinks
(``distributor.sinks.guard``), which sees the address actually dialled.

Error texts show the masked URL only (``registry.consumer_url``).
"""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit

from registry.api.errors import ApiError
from registry.consumer_url import keeps_a_mask, mask_url
from registry.targets import SETTING, TargetPolicy, parse_address

LOOKUP_TIMEOUT_S = 3.0
_ALLOW_HINT = f"an operator can allow internal networks with {SETTING} (comma-separated CIDRs)"


def check_url(kind: str, url: str) -> None:
    """The URL's shape for a consumer of ``kind``; a 422 saying what to fix."""
    parts = urlsplit(url)
    schemes = ("http", "https") if kind == "http" else ("mqtt", "mqtts")
    if parts.scheme not in schemes or not parts.hostname:
        raise ApiError(422, f"a {kind} consumer's url must be {' or '.join(s + '://host' for s in schemes)}..., "
                            f"got {mask_url(url)!r}")
    if kind == "mqtt" and len(parts.path) <= 1:
        raise ApiError(422, "an mqtt consumer's url needs a topic template, e.g. mqtt://host:1883/city/{device}")
    if kind == "mqtt" and ("+" in parts.path or "#" in url):       # a "#" would start a fragment: no topic level
        raise ApiError(422, "an mqtt consumer's topic template cannot hold the wildcards + or #")
    try:
        _ = parts.port
    except ValueError:
        raise ApiError(422, "the url's port is not a number between 0 and 65535") from None
    if keeps_a_mask(url):
        raise ApiError(422, "the url holds *** where a credential goes: send the whole URL with its credentials,"
                            " or the url exactly as shown to keep the stored ones")


def _legacy_ipv4(host: str) -> bool:
    """Whether ``host`` is an IPv4 address in a form other than four decimal numbers (``127.1``, ``0x7f.1``)."""
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return parse_address(host) is None


async def _addresses(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to now; empty when it does not (or not within the timeout)."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(LOOKUP_TIMEOUT_S):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError, UnicodeError):
        return []
    return [str(info[4][0]) for info in infos]


async def check_target(policy: TargetPolicy, url: str) -> None:
    """422 when the URL's host is one the service will refuse to connect to."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    literal = parse_address(host)
    if literal is not None:
        why = policy.refusal(literal)
        if why is not None:
            raise ApiError(422, f"the url's host {literal} is a {why} address, which consumers may not reach;"
                                f" {_ALLOW_HINT}")
        return
    if _legacy_ipv4(host):
        raise ApiError(422, "write the url's IPv4 address as four decimal numbers, e.g. 192.0.2.10")
    default_port = {"http": 80, "https": 443, "mqtt": 1883, "mqtts": 8883}.get(parts.scheme, 0)
    found = await _addresses(host, parts.port or default_port)
    if found and not any(policy.allows(a) for a in found):
        raise ApiError(422, f"the url's host {host!r} resolves only to internal addresses, which consumers may not"
                            f" reach; {_ALLOW_HINT}")
