"""Pieces the delivery-under-faults scenarios share: a paced publisher that records when each message left,
ids out of single and batched webhook bodies, latencies and their percentiles, and the pending table's
duplicates. (A module of helpers, not tests.)
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aiomqtt
import asyncpg

from tests.support.receivers import Received
from tests.support.scenario import EUI


async def paced_publish(port: int, messages: list[tuple[str, bytes]], per_second: float,
                        sent_at: dict[str, float]) -> None:
    """Publish at QoS 1 like ChirpStack, on a fixed schedule (no drift), recording each id's wall-clock send time."""
    topic = f"application/a/device/{EUI}/event/up"
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"pub-{uuid.uuid4().hex[:6]}",
                              max_inflight_messages=100) as client:
        start = time.monotonic()
        for i, (msg_id, body) in enumerate(messages):
            due = start + i / per_second
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sent_at.setdefault(msg_id, time.time())
            await client.publish(topic, body, qos=1)


def arrivals(got: Received) -> list[tuple[str, float]]:
    """(message id, arrival time) for every message received, batches (JSON arrays) included, in arrival order."""
    out: list[tuple[str, float]] = []
    for body, headers in zip(got.bodies, got.headers, strict=True):
        at = float(headers["X-Arrived"])
        for one in body if isinstance(body, list) else [body]:
            out.append((str(one["id"]), at))
    return out


def ids_in(got: Received) -> set[str]:
    return {m for m, _ in arrivals(got)}


def first_arrivals(got: Received) -> dict[str, float]:
    seen: dict[str, float] = {}
    for m, at in arrivals(got):
        seen.setdefault(m, at)
    return seen


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def summary(values: list[float]) -> str:
    return (f"p50 {percentile(values, 50) * 1000:.0f} ms, p99 {percentile(values, 99) * 1000:.0f} ms,"
            f" max {max(values) * 1000:.0f} ms (n={len(values)})")


async def pending_duplicates(url: str) -> tuple[int, int]:
    """(rows, rows beyond one per (consumer, message)) in pending_deliveries."""
    conn = await asyncpg.connect(url)
    try:
        row: Any = await conn.fetchrow("SELECT count(*) AS n, count(*) - count(DISTINCT (consumer_id, message_id))"
                                       " AS extra FROM pending_deliveries")
        return int(row["n"]), int(row["extra"])
    finally:
        await conn.close()


def timeline(sent_at: dict[str, float], arrived: dict[str, float], t0: float) -> str:
    """Per second of publishing (from t0): how many were sent, and their median and worst latency."""
    buckets: dict[int, list[float]] = {}
    for m, t in sent_at.items():
        if m in arrived:
            buckets.setdefault(int(t - t0), []).append(arrived[m] - t)
    return "\n".join(f"  t={k:3d} s  n={len(v):4d}  p50={percentile(v, 50) * 1000:7.0f} ms  max={max(v) * 1000:7.0f} ms"
                     for k, v in sorted(buckets.items()))
