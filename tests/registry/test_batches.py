"""One refused row never blocks its batch: ``write_isolating`` on a real PostgreSQL table."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import asyncpg
import pytest

from registry.batches import is_data_error, reason, write_isolating
from registry.db import create_pool


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(database_url)
    await p.execute("CREATE TABLE IF NOT EXISTS batch_probe (id int PRIMARY KEY, note text NOT NULL, doc jsonb)")
    await p.execute("TRUNCATE batch_probe")
    yield p
    await p.close()


async def _insert(conn: asyncpg.Connection, rows: Sequence[tuple[int, object]]) -> None:
    await conn.copy_records_to_table("batch_probe", records=[(i, note) for i, note in rows], columns=("id", "note"))


async def test_the_refused_rows_come_back_and_every_other_row_is_written(pool: asyncpg.Pool) -> None:
    rows: list[tuple[int, object]] = [(i, f"ok {i}") for i in range(100)]
    rows[17] = (17, "nul \x00 byte")                      # PostgreSQL: invalid byte sequence for UTF8
    rows[60] = (60, 12345)                                # asyncpg: not a str for a text column
    rows[99] = (5, "duplicate key")                       # unique violation against row 5
    async with pool.acquire() as conn:
        refused = await write_isolating(conn, rows, _insert)
    assert sorted(r[0] for r, _ in refused) == [5, 17, 60]
    assert all(is_data_error(exc) for _, exc in refused)
    assert "CharacterNotInRepertoire" in reason(next(exc for r, exc in refused if r[0] == 17))
    stored = {r["id"] for r in await pool.fetch("SELECT id FROM batch_probe")}
    assert stored == set(range(99)) - {17, 60}


async def test_an_accepted_batch_costs_one_statement(pool: asyncpg.Pool) -> None:
    calls = []

    async def counting(conn: asyncpg.Connection, rows: Sequence[tuple[int, object]]) -> None:
        calls.append(len(rows))
        await _insert(conn, rows)

    async with pool.acquire() as conn:
        assert await write_isolating(conn, [(i, "fine") for i in range(50)], counting) == []
    assert calls == [50]


async def test_an_outage_is_not_a_data_error_and_writes_nothing(pool: asyncpg.Pool) -> None:
    async def half_then_gone(conn: asyncpg.Connection, rows: Sequence[tuple[int, object]]) -> None:
        await _insert(conn, rows[:1])
        raise ConnectionResetError("the server closed the connection")

    async with pool.acquire() as conn:
        with pytest.raises(ConnectionResetError):
            await write_isolating(conn, [(1, "a"), (2, "b")], half_then_gone)
    assert await pool.fetchval("SELECT count(*) FROM batch_probe") == 0


async def test_nul_in_jsonb_is_stored_cleaned_by_the_codec(pool: asyncpg.Pool) -> None:
    doc = {"note\x00": ["a\x00b", {"deep": "\ud800 lone surrogate"}], "n": 1}
    await pool.execute("INSERT INTO batch_probe (id, note, doc) VALUES (1, 'x', $1)", doc)
    assert await pool.fetchval("SELECT doc FROM batch_probe WHERE id = 1") == {
        "note\ufffd": ["a\ufffdb", {"deep": "\ufffd lone surrogate"}], "n": 1}
