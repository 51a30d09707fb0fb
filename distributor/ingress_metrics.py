"""Metrics of who sends data in: wrong credentials per kind, and organizations not mapped to ChirpStack.

``iotd_auth_failures_total{kind}`` counts wrong credentials (``api_key``, ``ingest_key``,
``integration_token``, ``metrics_token``; see ``distributor.auth_throttle``).
``iotd_organizations_unmapped`` is read from the registry cache at scrape time: organizations no
ChirpStack tenant is mapped to, which receive ChirpStack events by dev_eui alone
(``registry.tenancy`` rule 3).
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from registry.cache import RegistryCache

log = structlog.get_logger("iotd.ingress")


class _Unmapped:
    def __init__(self, cache: RegistryCache) -> None:
        self._cache = cache

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily("iotd_organizations_unmapped", "Organizations no ChirpStack tenant is mapped to: "
                                "ChirpStack events reach them by dev_eui alone",
                                value=self._cache.snapshot.unmapped_organizations())

    def describe(self) -> Iterable[Metric]:
        return []


class IngressMetrics:
    def __init__(self, registry: CollectorRegistry, cache: RegistryCache, chirpstack_intake: bool) -> None:
        """``chirpstack_intake``: this instance takes ChirpStack events (then unmapped organizations are logged)."""
        self.auth_failures = Counter("iotd_auth_failures", "Wrong credentials presented, per kind", ["kind"],
                                     registry=registry)
        registry.register(_Unmapped(cache))
        unmapped = cache.snapshot.unmapped_organizations()
        if chirpstack_intake and unmapped:
            log.warning("organizations not mapped to a ChirpStack tenant receive ChirpStack events by dev_eui alone;"
                        " map them (POST /api/v1/organizations/{id}/chirpstack-mappings)", unmapped=unmapped,
                        organizations=len(cache.snapshot.organizations))
