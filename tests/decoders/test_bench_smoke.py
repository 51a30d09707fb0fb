"""The decoder benchmark runs end to end on a tiny budget (speed is not asserted here)."""

from __future__ import annotations

import pytest

from tests.perf.bench_decoders import benchmarked_ids, run


@pytest.mark.perf
def test_bench_smoke() -> None:
    rates = run(seconds=0.05)
    assert set(rates) == set(benchmarked_ids())
    assert rates
    for decoder_id, rate in rates.items():
        assert rate > 0, decoder_id
