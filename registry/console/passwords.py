"""Console passwords: argon2id hashes (argon2-cffi), checked so that neither a broken hash nor a
missing user can be told apart from a wrong password.

``PasswordHasher()`` uses argon2id with RFC 9106's low-memory parameters (3 passes, 64 MiB, 4 lanes),
about 50 ms a check: cheap for one person signing in, slow for someone guessing from a stolen table.
A sign-in for an e-mail nobody has still spends one check, on a dummy hash, so the answer takes as
long as for a real user. Checks run in a worker thread (``asyncio.to_thread``) so the event loop that
carries the distributor's traffic never waits for one.
"""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 12
MAX_LENGTH = 1024          # longer is no stronger, only slower to hash
_HASHER = PasswordHasher()


def hash_password(password: str) -> str:
    """The argon2id PHC string for ``password`` (salted: two hashes of one password differ)."""
    return _HASHER.hash(password)


@functools.cache
def _dummy_hash() -> str:
    return _HASHER.hash("no user has this password; it only costs the time a real check costs")


def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored``; False for a missing (``None``) or malformed hash, never
    an exception. Always costs one argon2 check."""
    usable = stored is not None and len(password) <= MAX_LENGTH
    try:
        return _HASHER.verify(stored if usable and stored else _dummy_hash(), password[:MAX_LENGTH]) and usable
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` was made with weaker parameters than today's (then it is replaced at sign-in)."""
    try:
        return _HASHER.check_needs_rehash(stored)
    except (InvalidHashError, ValueError):
        return False


def password_problem(password: str) -> str | None:
    """Why ``password`` cannot be used, or None."""
    if len(password) < MIN_LENGTH:
        return f"the password must be at least {MIN_LENGTH} characters (got {len(password)})"
    if len(password) > MAX_LENGTH:
        return f"the password may be at most {MAX_LENGTH} characters"
    if "\x00" in password:
        return "the password may not contain a NUL character"
    return None
