"""The end-to-end benchmark still runs (tiny runs; no speed assertion: figures live in tests/perf)."""

from __future__ import annotations

import pytest

from tests.perf.bench_end_to_end import run


@pytest.mark.perf
@pytest.mark.parametrize("consumer", ["http", "mqtt"])
async def test_end_to_end_bench_runs(consumer: str) -> None:
    result = await run(messages=50, concurrency=2, consumer=consumer)
    assert result["distinct_delivered"] == 50 and result["per_second"] > 0
