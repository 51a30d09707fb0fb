"""What API handlers need from the running service, handed over once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from registry.secrets import SecretBox


@dataclass
class ApiContext:
    pool: asyncpg.Pool
    box: SecretBox

