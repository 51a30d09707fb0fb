"""Who is calling: the credential check of every endpoint that takes one, from the headers alone.

``distributor.http_guard`` runs these before any body is read:

* ``/api/v1``: ``Authorization: Bearer <API key>``, looked up in PostgreSQL
  (``registry.api.auth.authenticate``: revocation is immediate on every instance).
* ``/ingest/http``: the device's ingest key (``Authorization: ApiKey``, ``X-API-Key`` or
  ``?apiKey=``), by its SHA-256 in the registry cache.
* ``/ingest/chirpstack``: ``Authorization: Bearer <token>``: ``IOTD_CHIRPSTACK_HTTP_TOKEN`` (the
  SHA-256 digests compared in constant time) or a token from ``/api/v1/integration-tokens`` (by its
  SHA-256 in the registry cache). With no token configured at all the endpoint refuses everything
  and says how to configure one (secure by default).
* ``/metrics``: ``Authorization: Bearer <IOTD_METRICS_TOKEN>`` when that setting is set; open otherwise.

Each check returns what it found, or a ``Refusal``: the answer to give, and the credential that was
presented (None when none was), which the guard counts as a failure. Nothing here logs a credential.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

import asyncpg
from starlette.datastructures import QueryParams

from distributor.sources.http_ingest import ingest_key
from registry.api.auth import MISSING_KEY, Principal, authenticate, bearer_value
from registry.api.errors import ApiError
from registry.cache import RegistryCache
from registry.records import Device
from registry.secrets import hash_token

AUTH_QUERY_TIMEOUT_S = 5.0
NO_INTEGRATION_TOKEN = (
    "no ChirpStack integration token is configured on this service: set IOTD_CHIRPSTACK_HTTP_TOKEN, or create one"
    " with `iotd admin create-integration-token` (or POST /api/v1/integration-tokens), and add the header"
    " `Authorization: Bearer <token>` to ChirpStack's HTTP integration")
MISSING_INTEGRATION_TOKEN = ("missing integration token: ChirpStack's HTTP integration must send the header"
                             " `Authorization: Bearer <token>`")
WRONG_INTEGRATION_TOKEN = "unknown or revoked integration token"
MISSING_INGEST_KEY = "missing or unknown ingest key: send `Authorization: ApiKey <key>` or `X-API-Key`"
METRICS_TOKEN = "/metrics needs `Authorization: Bearer <IOTD_METRICS_TOKEN>`"


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    message: str
    kind: str                       # api_key, ingest_key, integration_token, metrics_token
    presented: str | None = None    # the wrong credential (to classify, never to log); None: none presented
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ChirpStackCaller:
    token_id: str | None            # None: IOTD_CHIRPSTACK_HTTP_TOKEN
    tenant_id: str | None           # only events of this ChirpStack tenant; None: any


def _digest(secret: str | None) -> str | None:
    return hash_token(secret) if secret else None


class Credentials:
    def __init__(self, cache: RegistryCache, api_pool: asyncpg.Pool | None, chirpstack_token: str | None,
                 metrics_token: str | None) -> None:
        self._cache = cache
        self._pool = api_pool
        self._chirpstack = _digest(chirpstack_token)
        self._metrics = _digest(metrics_token)

    @property
    def metrics_protected(self) -> bool:
        return self._metrics is not None

    async def api(self, headers: Mapping[str, str]) -> Principal | Refusal:
        """The API key's principal. Database errors propagate (the guard answers 503)."""
        assert self._pool is not None, "the API is not served by this instance"
        bearer = (("WWW-Authenticate", "Bearer"),)
        token = bearer_value(headers.get("authorization", ""))
        if token is None:
            return Refusal(401, MISSING_KEY, "api_key", None, bearer)
        try:
            async with asyncio.timeout(AUTH_QUERY_TIMEOUT_S):
                return await authenticate(self._pool, token)
        except ApiError as exc:
            return Refusal(exc.status, exc.message, "api_key", token, bearer)

    def ingest(self, headers: Mapping[str, str], query_string: bytes) -> Device | Refusal:
        key = ingest_key(headers, {})   # the headers first: parsing the query costs more than the rest together
        if key is None and query_string:
            key = ingest_key(headers, QueryParams(query_string))
        device = self._cache.snapshot.by_ingest_key.get(hash_token(key)) if key else None
        return device if device is not None else Refusal(401, MISSING_INGEST_KEY, "ingest_key", key)

    def chirpstack(self, headers: Mapping[str, str]) -> ChirpStackCaller | Refusal:
        tokens = self._cache.snapshot.integration_tokens
        if self._chirpstack is None and not tokens:
            return Refusal(401, NO_INTEGRATION_TOKEN, "integration_token")
        token = bearer_value(headers.get("authorization", ""))
        if token is None:
            return Refusal(401, MISSING_INTEGRATION_TOKEN, "integration_token")
        digest = hash_token(token)
        if self._chirpstack is not None and hmac.compare_digest(digest, self._chirpstack):
            return ChirpStackCaller(None, None)
        found = tokens.get(digest)
        if found is None:
            return Refusal(401, WRONG_INTEGRATION_TOKEN, "integration_token", token)
        return ChirpStackCaller(found.id, found.chirpstack_tenant_id)

    def metrics(self, headers: Mapping[str, str]) -> bool | Refusal:
        if self._metrics is None:
            return True
        token = bearer_value(headers.get("authorization", ""))
        if token is not None and hmac.compare_digest(hash_token(token), self._metrics):
            return True
        return Refusal(401, METRICS_TOKEN, "metrics_token", token, (("WWW-Authenticate", "Bearer"),))
