"""Pure tables: which addresses consumers may reach (``registry.targets``), and how consumer URLs are masked."""

from __future__ import annotations

import pytest

from registry.consumer_url import has_credentials, keeps_a_mask, mask_url
from registry.targets import TargetPolicy, address_class, parse_networks

STRICT = TargetPolicy()


@pytest.mark.parametrize(("address", "refused_as"), [
    ("127.0.0.1", "loopback"), ("127.255.0.9", "loopback"), ("::1", "loopback"),
    ("10.0.0.5", "private"), ("172.16.3.4", "private"), ("172.31.255.255", "private"), ("192.168.1.1", "private"),
    ("fc00::1", "private"), ("fd12:3456::1", "private"), ("fec0::1", "private"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"), ("fe80::1%eth0", "link-local"),
    ("100.64.0.1", "shared (CGNAT)"), ("100.127.255.254", "shared (CGNAT)"),
    ("0.0.0.0", "unspecified"), ("0.1.2.3", "unspecified"), ("::", "unspecified"),
    ("224.0.0.1", "multicast"), ("239.255.255.250", "multicast"), ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"), ("192.0.2.10", "reserved"),
    ("198.18.0.1", "reserved"), ("2001:db8::1", "reserved"), ("100::1", "reserved"), ("4000::1", "reserved"),
    # IPv6 forms that carry an IPv4 address are judged by it
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.1.2.3", "private"), ("::ffff:169.254.169.254", "link-local"),
    ("::127.0.0.1", "loopback"), ("::10.0.0.1", "private"), ("64:ff9b::a00:1", "private"),
    ("64:ff9b::7f00:1", "loopback"), ("2002:7f00:1::1", "loopback"), ("2002:a00:1::", "private"),
    ("2001:0:4136:e378::1", "reserved"),                               # Teredo
    ("not-an-ip", "not an IP address"),
])
def test_internal_addresses_are_refused_by_default(address: str, refused_as: str) -> None:
    assert STRICT.refusal(address) == refused_as
    assert not STRICT.allows(address)


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1",
                                     "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "::ffff:93.184.215.14",
                                     "2002:5db8:d70e::1", "64:ff9b::808:808"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert STRICT.refusal(address) is None


def test_allowed_networks_open_exactly_what_they_list() -> None:
    policy = TargetPolicy.from_setting(" 10.20.0.0/16, fd00::/8 ,127.0.0.1/32,")
    for allowed in ("10.20.5.6", "fd00::7", "127.0.0.1", "::ffff:10.20.0.1", "::ffff:127.0.0.1"):
        assert policy.allows(allowed), allowed
    for refused in ("10.21.0.1", "127.0.0.2", "::1", "169.254.169.254", "fe80::1"):
        assert not policy.allows(refused), refused


def test_a_bad_network_names_the_setting() -> None:
    with pytest.raises(ValueError, match=r"IOTD_CONSUMER_ALLOWED_NETWORKS: '10\.0\.0\.0/33' is not a network"):
        parse_networks("10.0.0.0/8,10.0.0.0/33")
    assert parse_networks("") == ()


def test_classes_of_every_embedded_form_agree_with_the_plain_address() -> None:
    import ipaddress
    for plain in ("127.0.0.1", "10.1.2.3", "169.254.1.1", "100.64.1.1", "8.8.8.8"):
        v4 = ipaddress.IPv4Address(plain)
        expected = address_class(v4)
        for v6 in (f"::ffff:{plain}", f"::{plain}", f"64:ff9b::{plain}"):
            assert address_class(ipaddress.IPv6Address(v6)) == expected, v6
        sixtofour = ipaddress.IPv6Address((0x2002 << 112) | (int(v4) << 80))
        assert address_class(sixtofour) == expected


@pytest.mark.parametrize(("url", "masked"), [
    ("mqtt://user:pa55@broker:1883/t/{device}", "mqtt://***:***@broker:1883/t/{device}"),
    ("mqtt://token-as-user@broker/t", "mqtt://***@broker/t"),
    ("https://dept.example/hook?token=abc&format=json&bare", "https://dept.example/hook?token=***&format=***&***"),
    ("https://u:p@dept.example/hook?k=v#frag", "https://***:***@dept.example/hook?k=***#***"),
    ("https://dept.example/hook", "https://dept.example/hook"),
    ("mqtt://broker:1883/city/{device}", "mqtt://broker:1883/city/{device}"),
])
def test_urls_are_masked_idempotently(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert mask_url(masked) == masked
    assert has_credentials(url) == (url != masked)
    assert keeps_a_mask(masked) == (url != masked) and not keeps_a_mask(url)
