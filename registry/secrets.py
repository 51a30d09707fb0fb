"""Secrets at rest: credentials we must use again are encrypted, keys we only check are hashed.

Encryption is Fernet (AES-128-CBC + HMAC-SHA256) with a key derived from ``IOTD_SECRET_KEY``;
ingest and API keys are stored as SHA-256 of the key (they are long random tokens, so a
fast hash is enough and lets the hot path look a key up by its hash).
"""

from __future__ import annotations

import base64
import hashlib
import secrets

from cryptography.fernet import Fernet, InvalidToken


class SecretBox:
    """Encrypts and decrypts small secrets with one installation key."""

    def __init__(self, key_material: str) -> None:
        if len(key_material) < 16:
            raise ValueError("IOTD_SECRET_KEY must be at least 16 characters")
        digest = hashlib.sha256(key_material.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(token).decode()
        except InvalidToken:
            raise ValueError(
                "a stored secret cannot be decrypted: is IOTD_SECRET_KEY the one it was stored with?") from None

    def __repr__(self) -> str:
        return "SecretBox(<hidden>)"


def new_token(prefix: str) -> str:
    """A random key shown once to its owner, e.g. ``iotd_ik_...`` for ingest keys."""
    return f"{prefix}_{secrets.token_urlsafe(24)}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
