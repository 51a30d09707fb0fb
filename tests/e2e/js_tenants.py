"""Helpers for the JavaScript-decoder scenarios: tenants with their own keys, HTTP devices using a
JavaScript decoder, a webhook per tenant, and timing of requests (ingest, health, API)."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Any

import httpx

from decoders import catalog
from tests.support.api import Api


@dataclass
class Tenant:
    org: str
    app: str
    key: str


async def tenant(api: Api, name: str) -> Tenant:
    org = (await api.create("organizations", {"name": name}))["id"]
    app = (await api.create("applications", {"organization_id": org, "name": "sensors"}))["id"]
    key = (await api.create("api-keys", {"organization_id": org, "name": "admin", "role": "admin"}))["key"]
    return Tenant(org, app, key)


async def js_device(api: Api, who: Tenant, decoder: str, source: str | None = None, timeout_ms: int = 100
                    ) -> dict[str, Any]:
    """An HTTP device with ``decoder``, registering that JavaScript decoder first when ``source`` is given."""
    async with api.as_key(who.key) as client:
        if source is not None:
            await api.create("decoders", {"id": decoder, "organization_id": who.org, "source": source,
                                          "timeout_ms": timeout_ms}, client)
        return await api.create("devices", {"application_id": who.app, "name": f"{decoder}-device", "kind": "http",
                                            "decoder": decoder}, client)


async def subscribe(api: Api, who: Tenant, url: str, devices: list[dict[str, Any]]) -> str:
    """A webhook consumer of the tenant's application; returns once every device routes to it."""
    async with api.as_key(who.key) as client:
        consumer = (await api.create("consumers", {"organization_id": who.org, "name": "hook", "kind": "http",
                                                   "url": url}, client))["id"]
        await api.create("subscriptions", {"consumer_id": consumer, "application_id": who.app}, client)
    async with asyncio.timeout(5):
        while True:
            snap = api.service.cache.snapshot
            found = [snap.devices.get(d["id"]) for d in devices]
            scripts = [d["decoder"] for d in devices if catalog.get(d["decoder"]) is None]
            if all(d is not None and snap.consumers_for(d) for d in found) and \
                    consumer in api.service.dispatcher.lanes and \
                    all(api.service.js_decoders.get(s, who.org) is not None for s in scripts):
                return str(consumer)
            await asyncio.sleep(0.02)


async def ingest(client: httpx.AsyncClient, device: dict[str, Any], payload: bytes) -> tuple[float, int]:
    """(seconds until the service answered, status): the answer comes once the message is done."""
    started = time.monotonic()
    r = await client.post("/ingest/http", content=payload, headers={"X-API-Key": device["ingest_key"],
                                                                    "Content-Type": "application/octet-stream"})
    return time.monotonic() - started, r.status_code


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def summary(values: list[float]) -> str:
    return (f"n={len(values)} p50={percentile(values, 0.5) * 1000:.0f} ms p99={percentile(values, 0.99) * 1000:.0f} ms"
            f" max={max(values) * 1000:.0f} ms")


async def sample_latency(client: httpx.AsyncClient, path: str, every_s: float, stop: asyncio.Event,
                         headers: dict[str, str] | None = None) -> list[float]:
    """How long ``GET path`` takes, sampled until ``stop`` is set."""
    out: list[float] = []
    while not stop.is_set():
        started = time.monotonic()
        r = await client.get(path, headers=headers)
        assert r.status_code == 200, r.text
        out.append(time.monotonic() - started)
        await asyncio.sleep(every_s)
    return out
