"""Erasing stored messages when a device or application is deleted (issue 17, GDPR): the API's side of
``registry.history_erasure`` (the decision, and the audit log row)."""

from __future__ import annotations

import asyncpg

from registry.api.auth import Principal
from registry.api.common import audited
from registry.history_erasure import erase_devices

ERASE_HELP = ("erase the stored messages too (GDPR); default: yes when the application holds personal data, else"
              " they stay until the application's retention ends")


async def erasing(conn: asyncpg.Connection, asked: bool | None, application_id: str) -> bool:
    """Whether a deletion erases the history: as asked, else when the application holds personal data."""
    if asked is not None:
        return asked
    return bool(await conn.fetchval("SELECT personal_data FROM applications WHERE id = $1", application_id))


async def erase_late_arrivals(pool: asyncpg.Pool, device_ids: list[str]) -> None:
    """Once the deletion reached the caches, erase what was on its way into the store meanwhile (the hourly
    maintenance erases once more, for a day: ``registry.history_erasure``)."""
    async with pool.acquire() as conn:
        await erase_devices(conn, device_ids)


async def erase_history_of(conn: asyncpg.Connection, who: Principal, resource: str, resource_id: str,
                           organization_id: str, device_ids: list[str]) -> None:
    """Erase the devices' stored messages, in the caller's transaction, and say so in the audit log (one row
    for the deleted device or application, with how many devices and messages)."""
    erased = await erase_devices(conn, device_ids)
    await audited(conn, who, "erase-history", resource, resource_id, organization_id,
                  after={"devices": len(device_ids), "messages_erased": erased})
