"""Failed console sign-ins, counted in ``sign_in_failures`` so every instance shares one count.

Two scopes per attempt: the account (``account:<email lowercased>``, whether or not such a user
exists, so the lock tells a guesser nothing) and the client address (``address:<ip>``). Past
``ACCOUNT_LIMIT`` failures for one account, or ``ADDRESS_LIMIT`` from one address, within ``WINDOW``,
that scope is locked for ``LOCK``: every sign-in there is refused, with the right password too, so the
lock cannot be used to test guesses. A successful sign-in clears its account's count; the address's
count is left to its window, so one valid account cannot be used to reset it between guesses at others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

ACCOUNT_LIMIT = 5
ADDRESS_LIMIT = 20
WINDOW = timedelta(minutes=15)
LOCK = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class Scopes:
    account: str
    address: str

    @classmethod
    def of(cls, email: str, address: str) -> Scopes:
        return cls(f"account:{email.strip().lower()}", f"address:{address}")


def locked_message(seconds: float) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return (f"Too many failed sign-ins for this account or from this address. Sign-in is locked for"
            f" {minutes} more minute{'s' if minutes != 1 else ''}; try again later.")


async def locked_for(conn: asyncpg.Connection, scopes: Scopes) -> float | None:
    """Seconds until sign-in is possible again for these scopes, or None when it is not locked."""
    seconds = await conn.fetchval(
        "SELECT extract(epoch FROM max(locked_until) - now()) FROM sign_in_failures"
        " WHERE scope = ANY($1::text[]) AND locked_until > now()", [scopes.account, scopes.address])
    return float(seconds) if seconds is not None else None


_COUNT = """
INSERT INTO sign_in_failures AS f (scope, failures, window_start) VALUES ($1, 1, now())
ON CONFLICT (scope) DO UPDATE SET
    failures = CASE WHEN f.window_start > now() - $2::interval THEN f.failures + 1 ELSE 1 END,
    window_start = CASE WHEN f.window_start > now() - $2::interval THEN f.window_start ELSE now() END
RETURNING failures
"""


async def failed(conn: asyncpg.Connection, scopes: Scopes) -> bool:
    """Count one failure in both scopes; True when this failure locked one of them."""
    await conn.execute("DELETE FROM sign_in_failures WHERE window_start < now() - $1::interval"
                       " AND (locked_until IS NULL OR locked_until < now())", WINDOW)   # the table stays small
    locked = False
    for scope, limit in ((scopes.account, ACCOUNT_LIMIT), (scopes.address, ADDRESS_LIMIT)):
        failures = await conn.fetchval(_COUNT, scope, WINDOW)
        if failures >= limit:
            await conn.execute("UPDATE sign_in_failures SET locked_until = now() + $2::interval, failures = 0,"
                               " window_start = now() WHERE scope = $1", scope, LOCK)
            locked = True
    return locked


async def succeeded(conn: asyncpg.Connection, scopes: Scopes) -> None:
    await conn.execute("DELETE FROM sign_in_failures WHERE scope = $1", scopes.account)
