"""The JavaScript codec benchmark runs end to end on a tiny budget (speed is not asserted here)."""

from __future__ import annotations

import pytest

from tests.perf.bench_js import run


@pytest.mark.perf
def test_bench_js_smoke() -> None:
    figures = run(seconds=0.05)
    assert {
        "ttn_decodes_per_s_1_thread",
        "os2iot_decodes_per_s_1_thread",
        "reset_after_call_us",
        "context_build_ms",
        "context_kib",
        "ttn_decode_and_measure_per_s_1_thread",
        "minimal_decodes_per_s_1_thread",
        "table_top_level_decodes_per_s_1_thread",
        "pool_decodes_per_s_1_worker",
        "pool_service_cpu_us_per_decode_1_worker",
    } <= set(figures)
    for name, value in figures.items():
        assert value > 0, name
