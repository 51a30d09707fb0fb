"""Console sessions: a random token in the ``iotd_session`` cookie, its SHA-256 in ``console_sessions``.

Only the hash is stored, so reading the table (a backup, a replica) signs nobody in. A session ends
``IDLE`` after its last request, ``ABSOLUTE`` after sign-in whatever happens, at sign-out, or when its
user is deleted or loses the password. The user's role and organization are read again on every
request, so a change to them applies at once. ``last_seen_at`` is written at most once per
``TOUCH_EVERY``, so browsing costs reads, not a write per page.

The signed-in person acts as a ``UserPrincipal``: a ``registry.api.auth.Principal`` (so the API's own
tenancy scoping applies unchanged) whose ``actor`` names the user, for the audit log.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from registry.api.auth import Principal

COOKIE = "iotd_session"
IDLE = timedelta(minutes=30)
ABSOLUTE = timedelta(hours=12)
TOUCH_EVERY = timedelta(minutes=1)
TOKEN_BYTES = 32
MAX_TOKEN_LENGTH = 100        # a cookie longer than any token we issue is not looked up


@dataclass(frozen=True, slots=True)
class UserPrincipal(Principal):
    """A signed-in user; ``key_id`` carries the user's id (a session has no API key)."""

    email: str = ""

    @property
    def actor(self) -> str:
        return f"user:{self.email} ({self.key_id})"


@dataclass(frozen=True, slots=True)
class Session:
    id_hash: str
    csrf_token: str
    principal: UserPrincipal
    organization_name: str | None       # None: a global user (all organizations)

    @property
    def can_write(self) -> bool:
        return self.principal.has("write")


def new_token() -> str:
    """32 random bytes, URL-safe base64: the cookie value (or a CSRF token)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create(conn: asyncpg.Connection, user_id: str) -> str:
    """A new session for ``user_id``; returns its token (for the cookie), which is not stored. The user's
    ended sessions are cleared on the way."""
    token = new_token()
    await conn.execute("DELETE FROM console_sessions WHERE user_id = $1 AND (expires_at <= now()"
                       " OR last_seen_at <= now() - $2::interval)", user_id, IDLE)
    await conn.execute("INSERT INTO console_sessions (id_hash, user_id, csrf_token, expires_at)"
                       " VALUES ($1, $2, $3, now() + $4::interval)", token_hash(token), user_id, new_token(), ABSOLUTE)
    return token


_RESOLVE = """
SELECT s.id_hash, s.csrf_token, s.last_seen_at < now() - $3::interval AS stale, u.id, u.email, u.name, u.role,
       u.organization_id, o.name AS organization_name
  FROM console_sessions s
  JOIN users u ON u.id = s.user_id
  LEFT JOIN organizations o ON o.id = u.organization_id
 WHERE s.id_hash = $1 AND s.expires_at > now() AND s.last_seen_at > now() - $2::interval
   AND u.password_hash IS NOT NULL
"""


async def resolve(pool: asyncpg.Pool, token: str | None) -> Session | None:
    """The live session of a cookie value, or None (no cookie, unknown, idle too long or too old)."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    id_hash = token_hash(token)
    async with pool.acquire() as conn:
        row = await conn.fetchrow(_RESOLVE, id_hash, IDLE, TOUCH_EVERY)
        if row is None:
            await conn.execute("DELETE FROM console_sessions WHERE id_hash = $1", id_hash)   # ended: forget it
            return None
        if row["stale"]:
            await conn.execute("UPDATE console_sessions SET last_seen_at = now() WHERE id_hash = $1", id_hash)
    org = row["organization_id"]
    principal = UserPrincipal(key_id=str(row["id"]), name=row["name"], organization_id=str(org) if org else None,
                              role=row["role"], email=row["email"])
    return Session(id_hash, row["csrf_token"], principal, row["organization_name"])


async def end(pool: asyncpg.Pool, session: Session) -> None:
    """Sign out: the session's cookie no longer works anywhere."""
    await pool.execute("DELETE FROM console_sessions WHERE id_hash = $1", session.id_hash)
