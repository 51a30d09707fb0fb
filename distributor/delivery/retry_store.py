"""The retry worker's statements on ``pending_deliveries``, and the grouped deletion of delivered rows.

Claims take a lease: ``FOR UPDATE SKIP LOCKED`` picks rows no other instance is claiming, and
pushing ``next_attempt_at`` forward by the lease hides them from the others while they are sent,
without a transaction held open. ``claimed_by`` names the instance; a row is *leased* while it
is set and ``next_attempt_at`` is in the future.

* fresh-first: due rows, the longest-due first.
* strict: the consumer's rows in arrival (id) order, up to the first one that is leased or not
  yet due, so nothing overtakes a delivery that failed; a probe of an open circuit takes the
  head rows even when they are not due (the circuit decides when to probe).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

from distributor.delivery.backlog import Backlog

CLAIM = """
UPDATE pending_deliveries p SET next_attempt_at = now() + make_interval(secs => $3), claimed_by = $4
WHERE p.id IN (SELECT id FROM pending_deliveries WHERE consumer_id = $1 AND next_attempt_at <= now()
               ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)
RETURNING p.id, p.message_id, p.body, p.topic_vars, p.attempts, p.created_at
"""
CLAIM_STRICT = """
WITH head AS (
    SELECT id, next_attempt_at, claimed_by FROM pending_deliveries WHERE consumer_id = $1
    ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED),
blocked AS (
    SELECT min(id) AS id FROM head WHERE next_attempt_at > now() AND (claimed_by IS NOT NULL OR NOT $5::boolean))
UPDATE pending_deliveries p SET next_attempt_at = now() + make_interval(secs => $3), claimed_by = $4
FROM head WHERE p.id = head.id AND head.id < coalesce((SELECT id FROM blocked), 9223372036854775807)
RETURNING p.id, p.message_id, p.body, p.topic_vars, p.attempts, p.created_at
"""
RESCHEDULE = """
UPDATE pending_deliveries p SET attempts = x.attempts, next_attempt_at = now() + make_interval(secs => x.delay),
    last_error = $3, last_status = $4, claimed_by = NULL, history = p.history || jsonb_build_array($5::jsonb)
FROM unnest($1::bigint[], $2::int[], $6::float8[]) AS x(id, attempts, delay) WHERE p.id = x.id
"""
BURY = """
WITH moved AS (DELETE FROM pending_deliveries WHERE id = ANY($1::bigint[]) RETURNING *)
INSERT INTO dead_letters (consumer_id, message_id, body, topic_vars, attempts, history, last_error, last_status,
                          last_response, reason, first_failed_at)
SELECT consumer_id, message_id, body, topic_vars, attempts + 1, history || jsonb_build_array($2::jsonb), $3, $4, $5,
       $6, created_at FROM moved
"""
RELEASE = "UPDATE pending_deliveries SET next_attempt_at = now(), claimed_by = NULL WHERE id = ANY($1::bigint[])"
# rows an instance of this name claimed and never settled (it was stopped, or killed before the lease ran out)
RELEASE_MINE = ("UPDATE pending_deliveries SET next_attempt_at = now(), claimed_by = NULL"
                " WHERE claimed_by = $1 AND next_attempt_at > now()")
# a probe succeeded: the consumer is back, so nothing of its backlog waits out a backoff any longer
DUE_NOW = ("UPDATE pending_deliveries SET next_attempt_at = now()"
           " WHERE consumer_id = $1 AND claimed_by IS NULL AND next_attempt_at > now()")
DELETE = "DELETE FROM pending_deliveries WHERE id = ANY($1::bigint[])"
BACKLOG = """
SELECT consumer_id::text AS consumer_id, count(*) AS n, extract(epoch FROM now() - min(created_at)) AS oldest
FROM pending_deliveries GROUP BY consumer_id
"""


class Deletions:
    """Delivered rows, deleted in groups: at most one DELETE runs at a time and the next one takes every row
    delivered meanwhile, so a drain at a consumer's full concurrency costs one statement per round, not one per
    request (and never more than one of the pool's connections)."""

    def __init__(self, execute: Callable[..., Awaitable[object]], backlog: Backlog) -> None:
        self._execute = execute
        self._backlog = backlog
        self._ids: list[int] = []
        self._by_consumer: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None

    def add(self, consumer_id: str, ids: list[int]) -> None:
        self._ids.extend(ids)
        self._by_consumer[consumer_id] += len(ids)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush(), name="retry-deletions")
            self._task.add_done_callback(lambda t: t.cancelled() or t.exception())  # awaited by settle()

    async def settle(self) -> None:
        """Until every row added so far is deleted; raises what the DELETE raised (the rows stay queued)."""
        while self._ids or (self._task is not None and not self._task.done()):
            if self._task is None or self._task.done():
                self._task = asyncio.create_task(self._flush(), name="retry-deletions")
            await asyncio.shield(self._task)

    async def _flush(self) -> None:
        while self._ids:
            ids, by = self._ids, self._by_consumer
            self._ids, self._by_consumer = [], Counter()
            try:
                await self._execute(DELETE, ids)
            except BaseException:
                self._ids[:0] = ids
                self._by_consumer.update(by)
                raise
            for cid, n in by.items():
                self._backlog.removed(cid, n)
