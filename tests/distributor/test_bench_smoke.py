"""The end-to-end benchmark still runs (a tiny run; no speed assertion: figures live in tests/perf)."""

from __future__ import annotations

import pytest

from tests.perf.bench_end_to_end import run


@pytest.mark.perf
async def test_end_to_end_bench_runs() -> None:
    result = await run(messages=50, concurrency=2)
    assert result["distinct_delivered"] == 50 and result["per_second"] > 0
