"""Prometheus view of the JavaScript decoders: calls, timeouts, out-of-memory, context builds and
suspensions per decoder, whether a decoder is suspended, and worker restarts, read from the pool's
counters at scrape time (nothing is counted twice on the hot path). Labels name decoders, never devices.

A decoder's series appear as they become non-zero: a registered decoder that has never run has none,
and one that never timed out has no timeout series, instead of a row of zeros per decoder and scrape
(an installation may register hundreds of codecs and use a few). The price: ``rate()`` and
``increase()`` do not see a series' first increment, so alert on a timeout series existing
(``iotd_js_decoder_timeouts_total > 0``) or on ``iotd_js_decoder_suspended``, not on its rate alone."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from distributor.js_pool import JsPool

_FIELDS = (
    ("calls", "iotd_js_decoder_calls", "JavaScript decoder calls"),
    ("timeouts", "iotd_js_decoder_timeouts", "JavaScript decoder calls stopped at their time limit"),
    ("out_of_memory", "iotd_js_decoder_out_of_memory", "JavaScript decoder calls stopped at their memory limit"),
    ("contexts_built", "iotd_js_decoder_contexts_built", "QuickJS contexts built (load, limit hit, state reset)"),
    ("suspensions", "iotd_js_decoder_suspensions", "times a JavaScript decoder was suspended for timing out"),
)


class JsDecoderCollector:
    def __init__(self, pool: JsPool) -> None:
        self._pool = pool

    def collect(self) -> Iterable[Metric]:
        families = {field: CounterMetricFamily(name, doc, labels=["decoder"]) for field, name, doc in _FIELDS}
        for decoder_id, counters in sorted(self._pool.counters.items()):
            for field, _, _ in _FIELDS:
                value = getattr(counters, field)
                if value:
                    families[field].add_metric([decoder_id], float(value))
        yield from families.values()
        suspended = GaugeMetricFamily("iotd_js_decoder_suspended",
                                      "1 while a JavaScript decoder is suspended (for some organization)",
                                      labels=["decoder"])
        for decoder_id in sorted(self._pool.suspended()):
            suspended.add_metric([decoder_id], 1.0)
        yield suspended
        restarts = CounterMetricFamily("iotd_js_worker_restarts", "JavaScript worker processes killed or lost")
        restarts.add_metric([], float(self._pool.restarts))
        yield restarts
        waiting = GaugeMetricFamily("iotd_js_waiting", "uplinks waiting for a JavaScript worker")
        waiting.add_metric([], float(self._pool.waiting()))
        yield waiting

    def describe(self) -> Iterable[Metric]:
        return []
