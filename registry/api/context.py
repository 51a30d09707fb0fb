"""What API handlers need from the running service, handed over once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from registry.secrets import SecretBox
from registry.targets import TargetPolicy


@dataclass
class ApiContext:
    pool: asyncpg.Pool
    box: SecretBox
    targets: TargetPolicy = field(default_factory=TargetPolicy)   # where consumers may point (IOTD_CONSUMER_...)
    backfill_seam_s: float = 5.0     # a backfilling subscription goes live this long after it was made

