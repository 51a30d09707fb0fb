"""Where consumers may point: the address policy against SSRF. Pure, no I/O.

A consumer's URL is chosen by a tenant, and the service connects to it from inside the operator's
network, so by default the service refuses every address that is not public unicast: loopback,
private (RFC 1918, ULA ``fc00::/7``, site-local ``fec0::/10``), link-local (``169.254/16`` with the
cloud metadata service, ``fe80::/10``), shared address space (CGNAT ``100.64/10``), unspecified
(``0/8``, ``::``), multicast, and the reserved, documentation and benchmarking blocks (everything
outside ``2000::/3`` for IPv6). IPv6 forms that carry an IPv4 address (IPv4-mapped ``::ffff:0:0/96``,
IPv4-compatible ``::/96``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``) are judged by that IPv4 address.
The operator lists internal networks consumers may reach in ``IOTD_CONSUMER_ALLOWED_NETWORKS``
(comma-separated CIDRs); an address inside one of them is allowed whatever its class.

The policy is applied to the *resolved* addresses at connect time (``distributor.sinks.guard``) and,
as early feedback, when a consumer is created or changed (``registry.api.consumer_urls``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
SETTING = "IOTD_CONSUMER_ALLOWED_NETWORKS"
REFUSED = "target address not allowed"          # the reason class tenants see in the delivery log


class TargetRefused(OSError):
    """A connection to an address the policy refuses; an ``OSError`` so connection code treats it as one."""

    def __init__(self, reason: str = REFUSED) -> None:
        super().__init__(reason)
        self.reason = reason


def _table(rows: tuple[tuple[str, str], ...]) -> tuple[tuple[Network, str], ...]:
    return tuple((ipaddress.ip_network(cidr), what) for cidr, what in rows)


_V4 = _table((
    ("0.0.0.0/8", "unspecified"), ("10.0.0.0/8", "private"), ("100.64.0.0/10", "shared (CGNAT)"),
    ("127.0.0.0/8", "loopback"), ("169.254.0.0/16", "link-local"), ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved"), ("192.0.2.0/24", "reserved"), ("192.88.99.0/24", "reserved"),
    ("192.168.0.0/16", "private"), ("198.18.0.0/15", "reserved"), ("198.51.100.0/24", "reserved"),
    ("203.0.113.0/24", "reserved"), ("224.0.0.0/4", "multicast"), ("240.0.0.0/4", "reserved"),
))
_V6 = _table((
    ("::/128", "unspecified"), ("::1/128", "loopback"), ("64:ff9b:1::/48", "private"), ("100::/64", "reserved"),
    ("2001::/23", "reserved"), ("2001:db8::/32", "reserved"), ("fc00::/7", "private"), ("fe80::/10", "link-local"),
    ("fec0::/10", "private"), ("ff00::/8", "multicast"),
))
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_COMPATIBLE = ipaddress.ip_network("::/96")


def parse_address(value: str) -> IPAddress | None:
    """``value`` as an IP address (IPv6 with or without brackets and zone), or None if it is not one."""
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, compatible, NAT64, 6to4), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    plain = ipaddress.IPv6Address(int(address))          # without a zone id
    if plain in _NAT64 or (plain in _COMPATIBLE and int(plain) > 1):
        return ipaddress.IPv4Address(int(plain) & 0xFFFF_FFFF)
    return None


def address_class(address: IPAddress) -> str | None:
    """Why ``address`` is not public unicast ("loopback", "private", ...), or None when it is."""
    inner = embedded_ipv4(address)
    if inner is not None:
        return address_class(inner)
    if isinstance(address, ipaddress.IPv4Address):
        return next((what for net, what in _V4 if address in net), None)
    plain = ipaddress.IPv6Address(int(address))
    found = next((what for net, what in _V6 if plain in net), None)
    if found is None and plain not in _GLOBAL_UNICAST:
        return "reserved"
    return found


def parse_networks(text: str) -> tuple[Network, ...]:
    """The comma-separated CIDRs of ``IOTD_CONSUMER_ALLOWED_NETWORKS``; a bad entry raises ``ValueError``."""
    found: list[Network] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            found.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{SETTING}: {item!r} is not a network (write e.g. 10.20.0.0/16 or fd00::/8)") from None
    return tuple(found)


@dataclass(frozen=True, slots=True)
class TargetPolicy:
    """The addresses consumers may reach: public unicast, plus the operator's allowed networks."""

    allowed: tuple[Network, ...] = ()

    @classmethod
    def from_setting(cls, text: str) -> TargetPolicy:
        return cls(parse_networks(text))

    def _listed(self, address: IPAddress) -> bool:
        plain: IPAddress = address
        if isinstance(address, ipaddress.IPv6Address):
            plain = ipaddress.IPv6Address(int(address))           # without a zone id
        inner = embedded_ipv4(address)
        candidates: list[IPAddress] = [plain] if inner is None else [plain, inner]
        return any(a in net for a in candidates for net in self.allowed if a.version == net.version)

    def refusal(self, address: IPAddress | str) -> str | None:
        """None if a consumer may connect to ``address``; else its class, e.g. "loopback".

        A string that is not an IP address is refused ("not an IP address"): callers check resolved addresses.
        """
        parsed = parse_address(address) if isinstance(address, str) else address
        if parsed is None:
            return "not an IP address"
        if self._listed(parsed):
            return None
        return address_class(parsed)

    def allows(self, address: IPAddress | str) -> bool:
        return self.refusal(address) is None
