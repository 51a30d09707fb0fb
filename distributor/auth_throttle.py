"""Wrong credentials are throttled per client address, so guessing keys is slow and visible.

Counted: a presented credential that is wrong (an API key, a device ingest key, a ChirpStack
integration token, the metrics token). Not counted: a request that presents none (no guess).

The rule: per client address, a window of ``WINDOW_S`` opens at its first failure. Once ``limit``
failures (``IOTD_AUTH_FAILURE_LIMIT``) are counted in the window, every request from that address to
an endpoint that needs a credential is answered 429 with ``Retry-After`` until the window ends,
without its credential being checked: right and wrong keys alike, so a blocked guesser learns
nothing and an address gets at most ``limit`` guesses a minute. Below the limit, requests with a
right credential pass as usual; other addresses are never affected, and endpoints without a
credential (``/healthz``, ``/readyz``, ``/docs``) never are. Trade-off: devices behind one NAT
address share its budget, so a misconfigured device there can get its neighbours a 429 for the
rest of the minute (raise the limit for such networks).

One warning log line per address per window, at its first failure, with the kind and the
credential's type prefix only (``iotd_ik``, ``iotd_ak``, ``iotd_it`` or ``other``), never the
credential; every failure counts in ``iotd_auth_failures_total{kind}``. Memory is bounded: at
most ``MAX_ADDRESSES`` windows, expired ones dropped first, then the oldest.

The client address is the connection's peer as uvicorn reports it (uvicorn honours
``X-Forwarded-For`` only from ``--forwarded-allow-ips``, by default 127.0.0.1).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import structlog

log = structlog.get_logger("iotd.auth")

WINDOW_S = 60.0
MAX_ADDRESSES = 100_000
TYPE_PREFIXES = ("iotd_ak_", "iotd_ik_", "iotd_it_")


@dataclass(slots=True)
class _Window:
    opened: float
    failures: int = 0


def credential_type(presented: str) -> str:
    """What kind of credential was presented, without any of its secret part."""
    for prefix in TYPE_PREFIXES:
        if presented.startswith(prefix):
            return prefix[:-1]
    return "other"


class AuthThrottle:
    def __init__(self, limit: int, on_failure: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, window_s: float = WINDOW_S,
                 max_addresses: int = MAX_ADDRESSES) -> None:
        self.limit = limit
        self._on_failure = on_failure or (lambda kind: None)
        self._clock = clock
        self._window_s = window_s
        self._max = max_addresses
        self._windows: OrderedDict[str, _Window] = OrderedDict()   # oldest window first (see _make_room)

    def retry_after(self, address: str) -> int | None:
        """Seconds until ``address`` may try again; None when it is not blocked."""
        window = self._windows.get(address)
        if window is None:
            return None
        left = window.opened + self._window_s - self._clock()
        if left <= 0:
            del self._windows[address]
            return None
        return max(1, math.ceil(left)) if window.failures >= self.limit else None

    def failed(self, address: str, kind: str, presented: str) -> None:
        """Count a wrong credential of ``kind`` (api_key, ingest_key, integration_token, metrics_token)."""
        now = self._clock()
        window = self._windows.get(address)
        if window is None or now - window.opened >= self._window_s:
            self._windows.pop(address, None)
            self._make_room(now)
            window = self._windows[address] = _Window(now)
        window.failures += 1
        self._on_failure(kind)
        if window.failures == 1:
            log.warning("wrong credentials; more from this address within a minute are only counted",
                        address=address, kind=kind, presented=credential_type(presented), limit=self.limit,
                        window_s=self._window_s)

    def _make_room(self, now: float) -> None:
        """Forget the oldest windows (expired ones first: windows are kept in the order they opened) in O(1)
        each. Scanning every window, or finding a plain dict's first key past the deleted ones, made each
        wrong credential from a new address cost O(addresses) once the table was full: an attacker with many
        addresses could stall the event loop (issue 16's soak found the dict walk in the dedup window)."""
        while len(self._windows) >= self._max:
            self._windows.popitem(last=False)
