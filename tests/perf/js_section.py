"""The JavaScript decoders' figures for the harness: ``bench_js``'s TTN codec with every limit on (in
process, and through the service's worker pool), next to plain QuickJS running the same codec with no
limits and no isolation (the ceiling the sandbox is measured against; target ≥ 50,000 calls/s per core).
"""

from __future__ import annotations

import time

import quickjs

from tests.perf import bench_js

PLAIN_WRAPPER = "function plainCall(json) { return JSON.stringify(decodeUplink(JSON.parse(json))); }"


def plain_quickjs_per_s(seconds: float) -> float:
    """The TTN codec in one long-lived QuickJS context: no limits, no reset, state kept between calls."""
    ctx = quickjs.Context()
    ctx.eval(bench_js.TTN_CODEC + "\n" + PLAIN_WRAPPER)
    call = ctx.get("plainCall")
    arg = '{"bytes": [' + ",".join(str(b) for b in bench_js.TTN_FRAME) + '], "fPort": 5}'
    assert "temperature" in call(arg)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            call(arg)
        count += 100
    return count / (time.perf_counter() - start)


def run(seconds: float) -> dict[str, float]:
    figures = bench_js.run(seconds, threads=(1,), pool_workers=(1,))
    return {"limits_on_per_s": figures["ttn_decodes_per_s_1_thread"],
            "pool_per_s": figures["pool_decodes_per_s_1_worker"],
            # the "per core": a worker's own CPU per decode, decode + normalize + measurements + framing,
            # as the service runs it (absent when the run was too short for the clock to tick)
            "per_core_per_s": figures.get("pool_decodes_per_worker_cpu_s_1_worker", float("nan")),
            "plain_per_s": plain_quickjs_per_s(seconds)}
