"""``iotd admin create-user``: a console user, or a new password for an existing one, straight into the database.

The password is read from a prompt (asked twice) or, when stdin is not a terminal, from its first line,
so a script can pipe it in without it appearing in the process list or the shell history. It is stored
only as an argon2id hash and never printed or logged; the audit log names the change, not the value.
"""

from __future__ import annotations

import getpass
import re
import uuid
from typing import TextIO

import asyncpg

from registry.audit import record
from registry.console.passwords import hash_password, password_problem

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_EMAIL = 254


def read_password(stdin: TextIO) -> str:
    """The new password: prompted twice on a terminal, else the first line of stdin. ValueError says
    what is wrong with it."""
    if stdin.isatty():
        password = getpass.getpass("Password (at least 12 characters): ")
        if getpass.getpass("The same password again: ") != password:
            raise ValueError("the two passwords differ; nothing was changed")
    else:
        password = stdin.readline().rstrip("\r\n")
    problem = password_problem(password)
    if problem is not None:
        raise ValueError(problem)
    return password


def clean_email(email: str) -> str:
    email = email.strip()
    if len(email) > MAX_EMAIL or not EMAIL.match(email):
        raise ValueError(f"{email[:60]!r} is not an e-mail address")
    return email


def organization_id(given: str | None) -> str | None:
    """``--organization`` as a canonical UUID (None for ``--global``)."""
    if given is None:
        return None
    try:
        return str(uuid.UUID(given))
    except ValueError:
        raise ValueError(f"{given[:60]!r} is not an organization id (a UUID such as"
                         " 0b6f3c52-5d0e-4c1e-9a57-2f1d7f5e8a10; GET /api/v1/organizations lists them)") from None


async def create_or_set_password(conn: asyncpg.Connection, email: str, role: str, organization: str | None,
                                 name: str | None, password: str) -> str:
    """Create the user with this e-mail, or set the password of the one that has it (matched without regard
    to case; its role and organization are kept). Returns one line saying what was done."""
    email = clean_email(email)
    password_hash = hash_password(password)
    async with conn.transaction():
        existing = await conn.fetchrow("SELECT id, organization_id, email FROM users WHERE lower(email) = lower($1)"
                                       " ORDER BY email = $1 DESC LIMIT 1 FOR UPDATE", email)
        if existing is not None:
            await conn.execute("UPDATE users SET password_hash = $2, version = version + 1, updated_at = now()"
                               " WHERE id = $1", existing["id"], password_hash)
            await conn.execute("DELETE FROM console_sessions WHERE user_id = $1", existing["id"])
            org = existing["organization_id"]
            await record(conn, actor="cli", actor_key_id=None, action="update", resource="user",
                         resource_id=str(existing["id"]), organization_id=str(org) if org else None,
                         after={"password": "changed"})
            return (f"set the password of user {existing['email']} ({existing['id']}); its role and organization"
                    " are unchanged, and its open sessions were ended")
        if organization is not None and not await conn.fetchval(
                "SELECT 1 FROM organizations WHERE id = $1", organization):
            raise ValueError(f"organization not found (id {organization}; GET /api/v1/organizations lists them)")
        user_id = await conn.fetchval(
            "INSERT INTO users (organization_id, name, email, role, password_hash) VALUES ($1, $2, $3, $4, $5)"
            " RETURNING id", organization, (name or email).strip() or email, email, role, password_hash)
        await record(conn, actor="cli", actor_key_id=None, action="create", resource="user", resource_id=str(user_id),
                     organization_id=organization,
                     after={"id": str(user_id), "organization_id": organization, "name": name or email,
                            "email": email, "role": role, "password": "set"})
    scope = f"organization {organization}" if organization else "all organizations"
    return f"created user {email} ({user_id}) with role {role} in {scope}"
