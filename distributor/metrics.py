"""Prometheus metrics. Labels are bounded: source, decoder, consumer, outcome; never a device.

All metrics live in one registry object per service so tests can run several services in one
process; ``Metrics.render()`` gives the text exposition for ``/metrics``.

No ``*_created`` series (they were a quarter of the lines and nobody graphs them): counters' start
times come from ``process_start_time_seconds``, which the process collector adds with the
process's CPU, memory and file descriptors. ``iotd_consumer_info`` maps the consumer ids the
other metrics carry to names, read from the registry cache at scrape time, so it is current after
every reload.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import InfoMetricFamily
from prometheus_client.metrics_core import Metric

from registry.cache import RegistryCache

# process-wide in prometheus_client: every registry of this process
disable_created_metrics()  # type: ignore[no-untyped-call]
LABEL_MAX = 200              # a consumer's or organization's name, cut for a label value

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=r)   # process_cpu_seconds_total, process_resident_memory_bytes, open fds, start time
        self.received = Counter("iotd_received", "Messages received, per source and event",
                                ["source", "event"], registry=r)
        self.malformed = Counter("iotd_malformed", "Messages that could not be parsed, per source",
                                 ["source"], registry=r)
        self.unknown_devices = Counter("iotd_unknown_device_uplinks", "Uplinks from devices not in the registry",
                                       ["source"], registry=r)
        self.duplicates = Counter("iotd_duplicates", "Messages dropped as duplicates of one already handled",
                                  ["source"], registry=r)
        self.decoded = Counter("iotd_decoded", "Decode outcomes per decoder and status (ok, error, none)",
                               ["decoder", "status"], registry=r)
        self.delivered = Counter("iotd_deliveries", "Delivery attempts per consumer and outcome "
                                 "(ok, retry, failed, spilled)", ["consumer", "outcome"], registry=r)
        self.latency = Histogram("iotd_end_to_end_latency_seconds",
                                 "Time from receipt to delivery at the consumer", ["consumer_kind"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.in_flight = Gauge("iotd_in_flight", "Messages accepted but not yet done (acked)", registry=r)
        self.spilled = Counter("iotd_spilled", "Deliveries recorded in PostgreSQL for retry", ["consumer"],
                               registry=r)
        self.dead_letters = Counter("iotd_dead_letters", "Deliveries given up and kept as dead letters",
                                    ["consumer"], registry=r)
        self.retries = Counter("iotd_retries", "Retry attempts from the durable store, per consumer and outcome",
                               ["consumer", "outcome"], registry=r)
        self.pending = Gauge("iotd_pending_deliveries", "Deliveries waiting in PostgreSQL for retry", ["consumer"],
                             registry=r)
        self.pending_oldest = Gauge("iotd_pending_oldest_age_seconds", "Age of the oldest pending delivery",
                                    ["consumer"], registry=r)
        self.circuit = Gauge("iotd_consumer_circuit_state", "Consumer circuit: 0 closed, 1 half-open, 2 open",
                             ["consumer"], registry=r)
        self.queue_depth = Gauge("iotd_consumer_queue_depth", "Messages queued in memory for a consumer",
                                 ["consumer"], registry=r)
        self.device_events = Counter("iotd_device_events", "Non-uplink device events recorded (join, status, log)",
                                     ["event"], registry=r)
        self.broker_connected = Gauge("iotd_broker_connected", "1 while the ChirpStack broker has accepted our "
                                      "connection and been heard from within 1.5 keepalives (read at scrape time)",
                                      registry=r)
        self.registry_devices = Gauge("iotd_registry_devices", "Devices in the in-memory registry cache",
                                      registry=r)
        self.set_aside = Counter("iotd_rows_set_aside", "Rows PostgreSQL refused, set aside so the rest of their "
                                 "batch was stored, per table and outcome (set_aside: kept as a dead letter; "
                                 "dropped: nothing left to keep; refused, buffer_full: device state not kept)",
                                 ["table", "outcome"], registry=r)
        self.registry_reload_seconds = Gauge("iotd_registry_reload_seconds", "Duration of the last cache reload",
                                             registry=r)

    def render(self) -> bytes:
        data: bytes = generate_latest(self.registry)
        return data


class ConsumerInfoCollector:
    """``iotd_consumer_info{consumer,name,organization,organization_name} 1`` per registered consumer: join it
    (``* on(consumer) group_left(name)``) to read delivery metrics by name."""

    def __init__(self, cache: RegistryCache) -> None:
        self._cache = cache

    def collect(self) -> Iterable[Metric]:
        snapshot = self._cache.snapshot
        family = InfoMetricFamily("iotd_consumer", "Registered consumers: id, name and organization",
                                  labels=["consumer"])
        for consumer in sorted(snapshot.consumers.values(), key=lambda c: c.id):
            organization = snapshot.organizations.get(consumer.organization_id)
            family.add_metric([consumer.id], {
                "name": consumer.name[:LABEL_MAX], "organization": consumer.organization_id,
                "organization_name": organization.name[:LABEL_MAX] if organization is not None else ""})
        yield family

    def describe(self) -> Iterable[Metric]:
        return []
