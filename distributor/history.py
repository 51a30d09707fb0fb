"""The message store's writer (issue 17): every uplink that reached the pipeline, kept in ``messages``.

Storing is one more piece of the message's work: ``add`` holds its finalizer and the group commit
releases it, so a message is acknowledged (to the broker, or 2xx to an HTTP device) only once it is
in the store, as it is only once every consumer has it or it is spilled. Rows from many messages go
into one COPY (REFERENCE.md: the commit, not the row, is the cost); while a COPY is on its way the
next rows gather, so batches grow with the load by themselves.

While PostgreSQL is away the batch is retried with backoff and its messages stay unacknowledged (the
broker keeps them; the source's in-flight cap bounds what waits here). A row PostgreSQL refuses (every
value is made storable first, so this is not expected) is dropped, counted and logged, and its message
goes on: one bad row never blocks the others (``registry.batches``). A write that finds no partition
for a row (a retention class or a day not made yet) makes it and writes again
(``registry.history_partitions``).

Rows are built by ``row``: the message as delivered (the native JSON the consumers get, rendered once
for both), the raw payload, and its numeric measurements as two arrays for the charts' queries.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from decoders.contract import NUMBER
from distributor import waiting
from distributor.ack import Finalizer
from distributor.delivery.outage import Outage
from registry import storable
from registry.batches import is_data_error, reason, write_isolating
from registry.history_partitions import ensure
from registry.records import Device

log = structlog.get_logger("iotd.history")

COLUMNS = ("retention_days", "received_at", "id", "device_id", "application_id", "organization_id", "f_port",
           "payload", "body", "names", "vals")
Row = tuple[int, datetime, str, str, str, str, int | None, bytes, bytes, list[str], list[float]]
Queued = tuple[Row, Finalizer]
NAME_MAX = 200


def numeric(measurements: Sequence[dict[str, Any]]) -> tuple[list[str], list[float]]:
    """The numeric measurements as the ``names`` and ``vals`` columns; names from a decoder (JavaScript ones
    included) made storable."""
    names: list[str] = []
    vals: list[float] = []
    for m in measurements:
        value = m["value"]
        if isinstance(value, NUMBER) and not isinstance(value, bool):
            names.append(storable.text(m["name"], NAME_MAX))
            vals.append(float(value))
    return names, vals


def row(retention_days: int, received_at: float, message_id: str, device: Device, f_port: int | None,
        payload: bytes, body: bytes, measurements: Sequence[dict[str, Any]]) -> Row:
    """One ``messages`` row."""
    names, vals = numeric(measurements)
    return (retention_days, datetime.fromtimestamp(received_at, UTC), message_id, device.id, device.application_id,
            device.organization_id, f_port, payload, body, names, vals)


def _missing_partition(exc: BaseException) -> bool:
    return isinstance(exc, asyncpg.CheckViolationError) and "no partition" in str(exc)


async def _copy(conn: asyncpg.Connection, rows: Sequence[Queued]) -> None:
    records = [r for r, _ in rows]
    try:
        async with conn.transaction():      # a savepoint: a missing partition undoes only this COPY
            await conn.copy_records_to_table("messages", records=records, columns=COLUMNS)
        return
    except asyncpg.CheckViolationError as exc:
        if not _missing_partition(exc):
            raise
    await ensure(conn, {(r[0], r[1].date()) for r in records})
    await conn.copy_records_to_table("messages", records=records, columns=COLUMNS)


class MessageStore:
    def __init__(self, pool: asyncpg.Pool, max_batch: int = 5000, max_backoff_s: float = 5.0,
                 on_dropped: Callable[[int], None] | None = None) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._max_backoff_s = max_backoff_s
        self._rows: list[Queued] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._on_dropped = on_dropped or (lambda n: None)
        self._outage = Outage(log, "message history writes failing; messages wait unacknowledged until"
                                   " PostgreSQL is back", "message history writes work again")
        self.rows_written = 0
        self.batches = 0
        self._conn: asyncpg.Connection | None = None    # the writer's own: no pool round trip per batch

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="message-history")

    def add(self, stored: Row, finalizer: Finalizer) -> None:
        """Queue a row; the message's finalizer is held until the row is committed."""
        finalizer.hold()
        self._rows.append((stored, finalizer))
        self._wake.set()

    @property
    def backlog(self) -> int:
        return len(self._rows)

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            await self._wake.wait()
            batch = self._rows[: self._max_batch]
            try:
                refused = await self._write(batch)
            except Exception as exc:  # never let the writer die: messages wait on it to be acknowledged
                self._outage.failed(reason(exc), rows=len(batch))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)
                continue
            self._outage.ok()
            backoff = 0.05
            del self._rows[: len(batch)]
            self.rows_written += len(batch) - len(refused)
            self.batches += 1
            if refused:
                self._on_dropped(len(refused))
            for _, finalizer in batch:
                finalizer.release(True)
            if not self._rows:
                self._wake.clear()

    async def _write(self, batch: Sequence[Queued]) -> list[tuple[Queued, BaseException]]:
        """One COPY on the writer's own connection (a COPY is atomic: it writes all or nothing); only when
        PostgreSQL refuses it is the batch written again row-isolating, with savepoints, making partitions."""
        conn = await self._connection()
        try:
            try:
                await conn.copy_records_to_table("messages", records=[r for r, _ in batch], columns=COLUMNS)
                return []
            except Exception as refusal:
                if not is_data_error(refusal):
                    raise
            refused = await write_isolating(conn, batch, _copy)
        except BaseException:
            self._conn = None    # back to the pool, which closes it if it broke; the next batch takes another
            await self._pool.release(conn)
            raise
        for (stored, _), exc in refused:
            log.error("PostgreSQL refused a message for the history; dropped from it, the message goes on",
                      message_id=stored[2], device=stored[3], error=reason(exc))
        return refused

    async def _connection(self) -> asyncpg.Connection:
        """The writer's connection, or a new one from the pool when it was lost: asyncpg detaches a pooled
        connection it finds closed, even while idle (a PostgreSQL restart), and a detached one only raises."""
        conn = self._conn
        if conn is not None:
            try:
                if not conn.is_closed():
                    return conn
            except asyncpg.InterfaceError:
                pass
            self._conn = None
            with contextlib.suppress(Exception):
                await self._pool.release(conn)
        conn = self._conn = await self._pool.acquire()
        return conn

    async def drain(self, timeout: float) -> bool:
        """Wait until everything queued is written; False if the timeout passed first."""
        return await waiting.until(lambda: not self._rows, waiting.deadline_in(timeout))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._conn is not None:        # a connection lost meanwhile is detached and refuses even this
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                await self._pool.release(conn)
