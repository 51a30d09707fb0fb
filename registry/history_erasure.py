"""Erasing stored messages (issue 17, GDPR): a deleted device's history, on request or by default for
personal data.

Retention never deletes rows (it drops partitions); erasure does, by device, through the
``(device_id, received_at)`` index of every partition. A message can still be on its way into the store
when its device is deleted (in a write batch, or in an instance whose cache has not heard of the deletion
yet): each erasure is remembered (``history_erasures``) and ``erase_again`` (the hourly maintenance) erases
those devices' messages once more for a day after.
"""

from __future__ import annotations

import asyncpg

REMEMBER = "1 day"


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


async def erase_devices(conn: asyncpg.Connection, device_ids: list[str]) -> int:
    """Delete the devices' stored messages and remember the erasure; returns how many were deleted."""
    if not device_ids:
        return 0
    erased = _count(await conn.execute("DELETE FROM messages WHERE device_id = ANY($1::uuid[])", device_ids))
    await conn.execute("INSERT INTO history_erasures (device_id) SELECT unnest($1::uuid[])"
                       " ON CONFLICT (device_id) DO UPDATE SET erased_at = now()", device_ids)
    return erased


async def erase_again(conn: asyncpg.Connection) -> int:
    """Erase once more the messages of devices erased within a day; forget older erasures."""
    await conn.execute(f"DELETE FROM history_erasures WHERE erased_at < now() - interval '{REMEMBER}'")
    return _count(await conn.execute(
        "DELETE FROM messages WHERE device_id IN (SELECT device_id FROM history_erasures)"))
