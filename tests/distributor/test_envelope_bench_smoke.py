"""The envelope micro-benchmark still runs (a tiny run; the figures live in tests/perf/bench_envelope.py)."""

from __future__ import annotations

import pytest

from tests.perf.bench_envelope import one_message, run


@pytest.mark.perf
def test_envelope_bench_runs() -> None:
    result = run(iterations=50)
    assert result["build_message_us"] > 0 and result["senml_render_us"] > 0
    assert one_message()["device"]["organization_name"] == "Demo City"
