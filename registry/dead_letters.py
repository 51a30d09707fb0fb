"""Dead letters: list, inspect, replay and discard, always within one organization.

Replay moves rows back to ``pending_deliveries`` with a fresh attempt count; the retry worker
then delivers them through the consumer's lane like any other retry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    organization_id: str | None          # None only for a global admin
    consumer_id: str | None = None
    ids: tuple[int, ...] = ()
    message_id: str | None = None

    def where(self, first_param: int = 1) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        n = first_param
        if self.organization_id is not None:
            clauses.append(f"c.organization_id = ${n}::uuid")
            params.append(self.organization_id)
            n += 1
        if self.consumer_id is not None:
            clauses.append(f"d.consumer_id = ${n}::uuid")
            params.append(self.consumer_id)
            n += 1
        if self.ids:
            clauses.append(f"d.id = ANY(${n}::bigint[])")
            params.append(list(self.ids))
            n += 1
        if self.message_id is not None:
            clauses.append(f"d.message_id = ${n}")
            params.append(self.message_id)
            n += 1
        return (" AND ".join(clauses) or "true"), params


LIST_COLUMNS = ("d.id, d.consumer_id, d.message_id, d.attempts, d.last_error, d.last_status, d.reason,"
                " d.first_failed_at, d.dead_at")


async def list_dead_letters(conn: asyncpg.Connection, f: DeadLetterFilter, limit: int = 100,
                            offset: int = 0) -> list[dict[str, Any]]:
    where, params = f.where()
    rows = await conn.fetch(
        f"SELECT {LIST_COLUMNS} FROM dead_letters d JOIN consumers c ON c.id = d.consumer_id WHERE {where}"
        f" ORDER BY d.dead_at DESC, d.id DESC LIMIT {int(limit)} OFFSET {int(offset)}", *params)
    return [dict(r) for r in rows]


async def get_dead_letter(conn: asyncpg.Connection, f: DeadLetterFilter) -> dict[str, Any] | None:
    """One dead letter with its message body (decoded as text when it is UTF-8) and every attempt."""
    where, params = f.where()
    row = await conn.fetchrow(
        f"SELECT {LIST_COLUMNS}, d.body, d.history, d.last_response, d.topic_vars FROM dead_letters d"
        f" JOIN consumers c ON c.id = d.consumer_id WHERE {where} LIMIT 1", *params)
    if row is None:
        return None
    out = dict(row)
    body: bytes = out.pop("body")
    try:
        out["body"] = body.decode()
    except UnicodeDecodeError:
        out["body_hex"] = body.hex()
    return out


async def replay(conn: asyncpg.Connection, f: DeadLetterFilter) -> int:
    """Move matching dead letters back to the retry store; returns how many.

    A message already pending for the consumer (or two dead letters of the same message) is kept once:
    ``pending_deliveries`` holds one row per (consumer, message), and that row delivers it."""
    where, params = f.where()
    moved: int = await conn.fetchval(
        "WITH moved AS (DELETE FROM dead_letters d USING consumers c WHERE c.id = d.consumer_id AND " + where +
        " RETURNING d.*),"
        " kept AS (INSERT INTO pending_deliveries (consumer_id, message_id, body, topic_vars, attempts, history,"
        " next_attempt_at, created_at)"
        " SELECT consumer_id, message_id, body, topic_vars, 0,"
        " history || jsonb_build_array(jsonb_build_object('at', now(), 'error', 'replayed from dead letters')),"
        " now(), now() FROM moved ORDER BY id"
        " ON CONFLICT (consumer_id, message_id) DO NOTHING RETURNING 1)"
        " SELECT count(*) FROM moved", *params)
    return moved


async def discard(conn: asyncpg.Connection, f: DeadLetterFilter) -> int:
    where, params = f.where()
    result = await conn.execute(
        "DELETE FROM dead_letters d USING consumers c WHERE c.id = d.consumer_id AND " + where, *params)
    return int(result.split()[-1])
