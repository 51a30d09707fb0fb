"""The retry worker's pass: data PostgreSQL refuses for one consumer never stops the other consumers'
retries (before, the exception ended the pass, and the next pass began with the same consumer)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import asyncpg
import pytest

from distributor.delivery.retry import RetryWorker
from distributor.metrics import Metrics


@pytest.fixture
def pool(migrated_pool: asyncpg.Pool) -> asyncpg.Pool:
    return migrated_pool


def lane(name: str) -> Any:
    return SimpleNamespace(consumer=SimpleNamespace(id=name), depth=0,
                           breaker=SimpleNamespace(may_probe=lambda now, backlog=False: True, state="closed"))


async def test_one_consumers_refused_data_does_not_stop_the_others(pool: asyncpg.Pool) -> None:
    lanes = {"poisoned": lane("poisoned"), "healthy": lane("healthy")}
    worker = RetryWorker(pool, lambda: lanes, Metrics(), instance="t", poll_s=0.01)
    tried: list[str] = []

    async def retry(one: Any) -> int:
        tried.append(one.consumer.id)
        if one.consumer.id == "poisoned":
            raise asyncpg.CharacterNotInRepertoireError("invalid byte sequence for encoding \"UTF8\": 0x00")
        return 0

    async def table_unchanged() -> None:    # both consumers keep a backlog: passes keep being scheduled
        return None

    worker.retry = retry  # type: ignore[method-assign]
    worker.update_backlog = table_unchanged  # type: ignore[method-assign]
    worker.backlog.stored({"poisoned": 1, "healthy": 1})
    await worker.start()
    try:
        async with asyncio.timeout(5):
            while tried.count("healthy") < 3:
                await asyncio.sleep(0.01)
    finally:
        await worker.close()
    assert tried.count("poisoned") >= 3
