"""Pure rules of the door: which route takes which credential and body size, the wrong-key throttle,
and which organization owns a ChirpStack event. Tables, no I/O."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from distributor.auth_throttle import AuthThrottle, credential_type
from distributor.commands import check_url
from distributor.http_guard import CHIRPSTACK_LIMIT, DECODER_LIMIT, DEFAULT_LIMIT, declared_length, route_for
from distributor.sources.http_ingest import MAX_BODY
from registry.device_csv import MAX_BYTES
from registry.tenancy import owner


@pytest.mark.parametrize(("path", "api", "metrics", "credential", "limit"), [
    ("/ingest/http", True, False, "ingest", MAX_BODY),
    ("/ingest/chirpstack", True, False, "chirpstack", CHIRPSTACK_LIMIT),
    ("/api/v1/devices/import", True, False, "api", MAX_BYTES),
    ("/api/v1/decoders", True, False, "api", DECODER_LIMIT),
    ("/api/v1/decoders/acme/test", True, False, "api", DECODER_LIMIT),
    ("/api/v1/decoders/test", True, False, "api", DECODER_LIMIT),
    ("/api/v1/devices", True, False, "api", DEFAULT_LIMIT),
    ("/api/v1", True, False, "api", DEFAULT_LIMIT),
    ("/api/v1/devices", False, False, None, DEFAULT_LIMIT),          # no API here: the router answers 404
    ("/api/v1x", True, False, None, DEFAULT_LIMIT),
    ("/metrics", True, False, None, DEFAULT_LIMIT),
    ("/metrics", True, True, "metrics", DEFAULT_LIMIT),
    ("/healthz", True, True, None, DEFAULT_LIMIT),
    ("/docs", True, True, None, DEFAULT_LIMIT),
])
def test_every_route_has_a_credential_and_a_limit(path: str, api: bool, metrics: bool, credential: str | None,
                                                   limit: int) -> None:
    route = route_for(path, api, metrics)
    assert (route.credential, route.limit) == (credential, limit)


def test_the_limits_are_the_decided_ones() -> None:
    assert (MAX_BODY, CHIRPSTACK_LIMIT, MAX_BYTES, DECODER_LIMIT, DEFAULT_LIMIT) == (
        256 * 1024, 2**20, 20 * 2**20, 2 * 2**20, 2**20)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_gets_limit_failures_a_window_then_waits_it_out() -> None:
    clock, kinds = Clock(), []
    throttle = AuthThrottle(3, kinds.append, clock=clock)
    for _ in range(2):
        throttle.failed("10.0.0.1", "api_key", "iotd_ak_wrong")
        assert throttle.retry_after("10.0.0.1") is None
    clock.now += 10
    throttle.failed("10.0.0.1", "ingest_key", "guess")
    assert throttle.retry_after("10.0.0.1") == 50          # the window opened at the first failure
    assert throttle.retry_after("10.0.0.2") is None        # other addresses are not affected
    clock.now += 49.5
    assert throttle.retry_after("10.0.0.1") == 1
    clock.now += 0.5
    assert throttle.retry_after("10.0.0.1") is None        # the window is over: a fresh budget
    throttle.failed("10.0.0.1", "api_key", "x")
    assert throttle.retry_after("10.0.0.1") is None
    assert kinds == ["api_key", "api_key", "ingest_key", "api_key"]


def test_one_log_line_per_address_and_window_and_never_the_key() -> None:
    clock = Clock()
    throttle = AuthThrottle(100, clock=clock)
    secret = "iotd_ik_Zq3secretpart"
    with capture_logs() as logs:
        for _ in range(5):
            throttle.failed("10.0.0.1", "ingest_key", secret)
        throttle.failed("10.0.0.2", "integration_token", "my-own-chirpstack-token")
        clock.now += 61
        throttle.failed("10.0.0.1", "ingest_key", secret)
    assert [(e["address"], e["presented"]) for e in logs] == [
        ("10.0.0.1", "iotd_ik"), ("10.0.0.2", "other"), ("10.0.0.1", "iotd_ik")]
    assert all(e["log_level"] == "warning" for e in logs)
    assert "Zq3" not in str(logs) and "chirpstack-token" not in str(logs)


def test_memory_is_bounded_expired_windows_first_then_the_oldest() -> None:
    clock = Clock()
    throttle = AuthThrottle(1, clock=clock, max_addresses=3)
    throttle.failed("a", "api_key", "x")
    clock.now += 61
    for address in ("b", "c", "d"):
        throttle.failed(address, "api_key", "x")
    assert throttle.retry_after("a") is None and throttle.retry_after("d") is not None
    throttle.failed("e", "api_key", "x")                      # full of live windows: "b" (oldest) goes
    assert [throttle.retry_after(a) is not None for a in "bcde"] == [False, True, True, True]


@pytest.mark.parametrize(("presented", "kind"), [("iotd_ak_abc", "iotd_ak"), ("iotd_ik_abc", "iotd_ik"),
                                                   ("iotd_it_abc", "iotd_it"), ("iotd_akabc", "other"), ("", "other")])
def test_only_the_type_of_a_credential_is_ever_named(presented: str, kind: str) -> None:
    assert credential_type(presented) == kind


TENANT = "52f14cd4-c6f1-4fbd-8f87-4025e1d49242"
APP_1 = "3b1a5ad5-5a2e-4b8f-9a7c-0e3f2d1c4b5a"
APP_2 = "0d7e8f3a-2b1c-4d5e-8f9a-1b2c3d4e5f60"


@pytest.mark.parametrize(("owners", "tenant", "application", "expected"), [
    ({}, TENANT, APP_1, None),                                              # nothing mapped
    ({(TENANT, ""): "X"}, TENANT, APP_1, "X"),                              # the whole tenant
    ({(TENANT, ""): "X"}, TENANT, None, "X"),
    ({(TENANT, ""): "X"}, TENANT.upper(), APP_1.upper(), "X"),              # ids compare in lower case
    ({(TENANT, ""): "X"}, "another-tenant", APP_1, None),
    ({(TENANT, ""): "X"}, None, APP_1, None),                               # no tenant id: unmapped
    ({(TENANT, ""): "X"}, "", APP_1, None),
    ({(TENANT, APP_1): "Y"}, TENANT, APP_1, "Y"),                           # one application
    ({(TENANT, APP_1): "Y"}, TENANT, APP_2, None),                          # the tenant's other applications
    ({(TENANT, APP_1): "Y"}, TENANT, None, None),
    ({(TENANT, ""): "X", (TENANT, APP_1): "Y"}, TENANT, APP_1, "Y"),        # the more specific mapping wins
    ({(TENANT, ""): "X", (TENANT, APP_1): "Y"}, TENANT, APP_2, "X"),
])
def test_the_owner_of_a_chirpstack_event(owners: dict[tuple[str, str], str], tenant: str | None,
                                         application: str | None, expected: str | None) -> None:
    assert owner(owners, tenant, application) == expected


@pytest.mark.parametrize("text", ["²", "١٢", "12²"])   # digits to str.isdigit(), not to int()
def test_numbers_from_outside_are_ascii_digits_or_nothing(text: str) -> None:
    """A header or setting like "Content-Length: ²" used to raise ValueError where it was read."""
    assert declared_length({"content-length": text}) is None
    with pytest.raises(SystemExit, match="not a port number"):
        check_url(None, {"IOTD_HTTP_PORT": text})
