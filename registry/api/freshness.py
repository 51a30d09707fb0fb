"""Changes that must take effect at once: the API answers only when this instance's registry cache has them.

Ingest keys and ChirpStack integration tokens are checked against the in-memory registry cache
(``registry.cache``), which reloads ~0.05-0.1 s after a commit (NOTIFY). Without a wait, a rotated
ingest key, a deleted device or a revoked token would keep working for that long after the API said
it was done. The endpoints that make such changes await ``applied`` after their commit: it returns
once this instance's cache has loaded a snapshot taken after the commit, or after ``WAIT_S``
(logged). Other instances follow within their own reload time.
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog
from fastapi import Request

log = structlog.get_logger("iotd.api")
STATE_NAME = "registry_cache"     # app.state attribute holding the RegistryCache (set by distributor.http_app)
WAIT_S = 2.0


async def applied(request: Request, devices: Iterable[str] | None = None) -> None:
    """Wait (bounded) until the registry cache of this instance holds every change committed so far;
    ``devices``: the change touched only these devices (the cache reads just them again)."""
    cache = getattr(request.app.state, STATE_NAME, None)
    if cache is None:
        return
    if not await cache.caught_up(WAIT_S, devices):
        log.warning("the registry cache did not load a change in time; other requests may see the old state"
                    " briefly", path=request.url.path, wait_s=WAIT_S)
