"""Secrets at rest: credentials we must use again are encrypted, keys we only check are hashed.

Encryption is Fernet (AES-128-CBC + HMAC-SHA256). Its key is derived from ``IOTD_SECRET_KEY`` with
scrypt and a random salt stored in the database (``installation``), so a stolen database plus a
guessable ``IOTD_SECRET_KEY`` costs an attacker ~50 ms of scrypt per guess instead of one SHA-256.
``registry.installation.open_secret_box`` makes the box (it needs the salt). iotd's first key was
SHA-256 of ``IOTD_SECRET_KEY`` with no salt (``legacy_fernet``); it is read only once, while the
ciphertexts stored with it are re-encrypted.

Ingest and API keys are stored as SHA-256 of the key (they are long random tokens, so a fast hash
is enough and lets the hot path look a key up by its hash).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

WRONG_KEY = "a stored secret cannot be decrypted: is IOTD_SECRET_KEY the one it was stored with?"
MIN_KEY_LENGTH = 16


@dataclass(frozen=True, slots=True)
class KdfParams:
    """scrypt's cost: n=2^14, r=8, p=1 takes ~50-70 ms and 16 MiB here; stored per installation."""

    n: int = 2**14
    r: int = 8
    p: int = 1

    def as_dict(self) -> dict[str, int]:
        return {"n": self.n, "r": self.r, "p": self.p}


def check_key_material(key_material: str | None) -> str:
    """``IOTD_SECRET_KEY`` itself, if it is usable; a ``ValueError`` saying what is wrong otherwise."""
    if not key_material:
        raise ValueError("IOTD_SECRET_KEY is not set: it encrypts stored consumer credentials")
    if len(key_material) < MIN_KEY_LENGTH:
        raise ValueError(f"IOTD_SECRET_KEY must be at least {MIN_KEY_LENGTH} characters")
    return key_material


def derive_fernet(key_material: str, salt: bytes, params: KdfParams) -> Fernet:
    """The installation's Fernet key: scrypt(IOTD_SECRET_KEY, salt). CPU-bound (~50 ms): run it off the loop."""
    kdf = Scrypt(salt=salt, length=32, n=params.n, r=params.r, p=params.p)
    return Fernet(base64.urlsafe_b64encode(kdf.derive(check_key_material(key_material).encode())))


def legacy_fernet(key_material: str) -> Fernet:
    """The key of iotd 0.1 (SHA-256 of the key material, no salt): only to read what it stored."""
    digest = hashlib.sha256(check_key_material(key_material).encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


class SecretBox:
    """Encrypts with the installation key and decrypts what it (or, while migrating, its predecessor) wrote."""

    def __init__(self, fernet: Fernet | MultiFernet) -> None:
        self._fernet = fernet

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(token).decode()
        except InvalidToken:
            raise ValueError(WRONG_KEY) from None

    def rotate(self, token: bytes) -> bytes:
        """``token`` encrypted with the current key (``ValueError`` if no key of this box reads it)."""
        try:
            return self._fernet.rotate(token) if isinstance(self._fernet, MultiFernet) else self._fernet.encrypt(
                self._fernet.decrypt(token))
        except InvalidToken:
            raise ValueError(WRONG_KEY) from None

    def __repr__(self) -> str:
        return "SecretBox(<hidden>)"


def new_token(prefix: str) -> str:
    """A random key shown once to its owner, e.g. ``iotd_ik_...`` for ingest keys."""
    return f"{prefix}_{secrets.token_urlsafe(24)}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
