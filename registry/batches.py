"""Many rows in one statement, without letting one bad row block the rest.

Batched writers (the spill store, the device-state writer) group rows from many messages and
many tenants into one statement: that is what makes them fast (REFERENCE.md: the commit, not the
row, is the cost). The price is that one row PostgreSQL refuses fails the whole statement; retried
as it is, it would fail forever and hold every later row of every tenant behind it.

``write_isolating`` writes the rows in one transaction; when the *data* is refused it splits the
batch in halves under savepoints, down to the single rows that fail, writes all the others and
hands the refused ones back with their errors, for the caller to set aside. Errors that are not
about the data (connection lost, server shutting down, disk full) propagate unchanged: the caller
keeps its rows and retries the whole batch later, as before.

Cost: nothing when the batch is accepted; about 2·log2(n) extra statements per refused row.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import asyncpg

T = TypeVar("T")

_DATA_CLASSES = ("22", "23")        # SQLSTATE classes: data exception, integrity constraint violation


def is_data_error(exc: BaseException) -> bool:
    """Whether ``exc`` says these rows cannot be stored (as opposed to "the database is not there now")."""
    if isinstance(exc, asyncpg.PostgresError):
        return str(getattr(exc, "sqlstate", "") or "")[:2] in _DATA_CLASSES
    if isinstance(exc, asyncpg.InterfaceError):      # asyncpg refused to encode an argument: a DataError
        return isinstance(exc, ValueError)
    # raised by codecs while encoding a row: orjson (TypeError), str.encode, int/float range checks
    return isinstance(exc, UnicodeError | TypeError | OverflowError | ValueError)


async def write_isolating(conn: asyncpg.Connection, rows: Sequence[T],
                          write: Callable[[asyncpg.Connection, Sequence[T]], Awaitable[None]]
                          ) -> list[tuple[T, BaseException]]:
    """Write ``rows`` with ``write`` in one transaction; returns the rows PostgreSQL refused, with why.

    Everything else is written (and committed) when this returns; a non-data error propagates and
    then nothing is written.
    """
    refused: list[tuple[T, BaseException]] = []

    async def attempt(part: Sequence[T]) -> None:
        try:
            async with conn.transaction():          # a savepoint inside the outer transaction
                await write(conn, part)
        except Exception as exc:
            if not is_data_error(exc):
                raise
            if len(part) == 1:
                refused.append((part[0], exc))
                return
            middle = len(part) // 2
            await attempt(part[:middle])
            await attempt(part[middle:])

    if rows:
        async with conn.transaction():
            await attempt(rows)
    return refused


def reason(exc: BaseException) -> str:
    """A one-line description of why a row was refused, for logs and dead letters."""
    state = getattr(exc, "sqlstate", None)
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    return f"{type(exc).__name__}{f' ({state})' if state else ''}: {first}"
