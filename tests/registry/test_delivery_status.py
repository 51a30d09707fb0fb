"""The delivery log says in words how a consumer is doing (issue 15): ``health`` keeps the circuit state for
compatibility, ``status`` reads "healthy", "probing…" or "failing, paused until <time>"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from registry.delivery_status import delivery_status
from tests.support.api import Api

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)


@pytest.mark.parametrize(("circuit", "pending", "next_at", "expected"), [
    ("closed", 0, None, "healthy"),
    ("closed", 3, NOW, "healthy, catching up; 3 deliveries waiting"),
    ("half_open", 0, None, "probing: one delivery is testing whether the consumer is back"),
    ("open", 120, LATER, "failing, paused until 2026-11-22 10:05:00 UTC; 120 deliveries waiting"),
    ("open", 2, NOW - timedelta(seconds=1), "failing, paused until the next probe (due now); 2 deliveries waiting"),
    ("open", 0, None, "failing, paused until the next probe (due now)"),
])
def test_status_in_words(circuit: str, pending: int, next_at: datetime | None, expected: str) -> None:
    assert delivery_status(circuit, pending, next_at, NOW) == expected


async def test_the_delivery_log_answers_status_beside_health(api: Api) -> None:
    org = (await api.create("organizations", {"name": "status-city"}))["id"]
    consumer = (await api.create("consumers", {"organization_id": org, "name": "department", "kind": "http",
                                               "url": "http://127.0.0.1:9/hook"}))["id"]
    path = f"/api/v1/consumers/{consumer}/delivery-log"
    healthy = (await api.client.get(path)).json()
    assert (healthy["health"], healthy["status"], healthy["next_retry_at"]) == ("closed", "healthy", None)

    assert api.service.pool is not None
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    await api.service.pool.execute("INSERT INTO consumer_stats (consumer_id, failed, circuit) VALUES ($1, 7, 'open')",
                                   consumer)
    await api.service.pool.execute("INSERT INTO pending_deliveries (consumer_id, message_id, body, next_attempt_at)"
                                   " VALUES ($1, 'm1', 'x', $2)", consumer, due)
    failing = (await api.client.get(path)).json()
    assert failing["health"] == "open"   # unchanged, for existing clients
    assert failing["status"] == f"failing, paused until {due:%Y-%m-%d %H:%M:%S} UTC; 1 delivery waiting"
    assert datetime.fromisoformat(failing["next_retry_at"]) == due
