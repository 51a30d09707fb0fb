"""What API handlers need from the running service, handed over once at start-up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg

from decoders import catalog
from registry.secrets import SecretBox


@dataclass
class ApiContext:
    pool: asyncpg.Pool
    box: SecretBox
    # decoder ids usable by an organization's devices (built-ins plus its own JavaScript decoders)
    decoder_exists: Callable[[str, str], bool] = field(default=lambda decoder_id, organization_id: builtin_exists(
        decoder_id))


def builtin_exists(decoder_id: str) -> bool:
    return catalog.get(decoder_id) is not None
