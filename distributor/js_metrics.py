"""Prometheus view of the JavaScript decoders: calls, timeouts, out-of-memory and context rebuilds
per decoder, read from each codec's counters at scrape time (nothing is counted twice on the hot path)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric

from distributor.js_codecs import JsDecoders

_FIELDS = (
    ("calls", "iotd_js_decoder_calls", "JavaScript decoder calls"),
    ("timeouts", "iotd_js_decoder_timeouts", "JavaScript decoder calls stopped at their time limit"),
    ("out_of_memory", "iotd_js_decoder_out_of_memory", "JavaScript decoder calls stopped at their memory limit"),
    ("contexts_built", "iotd_js_decoder_contexts_built", "QuickJS contexts built (load, limit hit, state reset)"),
)


class JsDecoderCollector:
    def __init__(self, decoders: JsDecoders) -> None:
        self._decoders = decoders

    def collect(self) -> Iterable[Metric]:
        families = {field: CounterMetricFamily(name, doc, labels=["decoder"]) for field, name, doc in _FIELDS}
        for decoder_id, compiled in self._decoders.compiled().items():
            if compiled.codec is None:
                continue
            stats = compiled.codec.stats
            for field, _, _ in _FIELDS:
                families[field].add_metric([decoder_id], float(getattr(stats, field)))
        yield from families.values()

    def describe(self) -> Iterable[Metric]:
        return []
