"""Decodes per second for every catalogued decoder: ``python -m tests.perf.bench_decoders [--seconds N]``.

Each decoder decodes its first good example, then normalizes the result, through the catalog's
exception-proof ``Decoder`` (``catalog.get(id).decode`` + ``.normalize``), as the pipeline does.
``--seconds`` is the total budget, shared evenly between decoders. Importing builds nothing; ``run()``
does the work, so a smoke test can call it with a tiny budget.
"""

from __future__ import annotations

import argparse
import statistics
import time

from decoders import catalog
from decoders.catalog import Decoder
from decoders.contract import Example


def first_good_example(decoder: Decoder) -> Example | None:
    return next((e for e in decoder.examples if not e.errors), None)


def benchmarked_ids() -> list[str]:
    """Every decoder the catalog loads (the built-ins, plus installed plugins) that has a good example."""
    return sorted(i for i, d in catalog.load_all().items() if first_good_example(d) is not None)


def decodes_per_second(decoder_id: str, seconds: float) -> float:
    """Decode + normalize the first good example in doubling batches until ``seconds`` have passed."""
    decoder = catalog.get(decoder_id)
    example = first_good_example(decoder) if decoder is not None else None
    if decoder is None or example is None:
        raise ValueError(f"{decoder_id!r} is not a catalogued decoder with a good example")
    payload, fport = bytes.fromhex(example.payload_hex), example.fport
    decoder.normalize(decoder.decode(payload, fport).data)  # warm up
    calls, batch = 0, 1
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(batch):
            decoder.normalize(decoder.decode(payload, fport).data)
        calls += batch
        now = time.perf_counter()
        if now >= deadline:
            return calls / (now - start)
        batch = min(batch * 2, 4096)


def run(seconds: float = 5.0) -> dict[str, float]:
    """Decodes per second for each decoder, the budget shared evenly."""
    ids = benchmarked_ids()
    share = seconds / max(len(ids), 1)
    return {decoder_id: decodes_per_second(decoder_id, share) for decoder_id in ids}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="total time budget (default 5)")
    args = parser.parse_args(argv)
    rates = run(args.seconds)
    width = max((len(i) for i in rates), default=10)
    for decoder_id, rate in rates.items():
        print(f"  {decoder_id:<{width}}  {rate:>12,.0f} decodes/s")
    if rates:
        print(f"  {'median':<{width}}  {statistics.median(rates.values()):>12,.0f} decodes/s ({len(rates)} decoders)")


if __name__ == "__main__":
    main()
