"""Two tenants with one of everything, for the generated isolation test, and what the operator sees of them.

``make_tenant`` builds an organization through the REST API as the global admin (plus SQL where no API
exists: a dead letter, and an unknown device heard under the ChirpStack tenant mapped to it). Every
name of a tenant carries its ``marker``, so one search for the marker finds any of its names in an
answer; ``secrets`` lists every value that must never reach another tenant.

``snapshot`` reads, as the global admin, every GET operation of the OpenAPI document: collections
(whole, no filters) split into one tenant's items and everybody else's, and single objects at the other
tenant's ids. Two snapshots compared tell whether anything not the caller's changed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from distributor.sinks.http import verify
from tests.support.api import Api
from tests.support.openapi_probe import PAGE_SIZE, Operation, build
from tests.support.receivers import Received

ROLES = ("admin", "write", "read")
OWNER_FIELDS = ("id", "organization_id", "consumer_id", "application_id", "device_id", "identifier")
VOLATILE = frozenset({"last_used_at"})     # the global admin's own key changes as it reads


@dataclass
class Tenant:
    label: str
    marker: str
    org: str = ""
    app: str = ""
    lorawan: str = ""
    dev_eui: str = ""
    app_key: str = ""
    device: str = ""            # the http device (it has an ingest key)
    ingest_key: str = ""
    consumer: str = ""
    consumer_secret: str = ""
    header_secret: str = ""
    url_token: str = ""
    subscription: str = ""
    replay: str = ""
    user: str = ""
    keys: dict[str, tuple[str, str]] = field(default_factory=dict)     # role -> (id, key)
    decoder: str = ""
    source_token: str = ""      # a name inside the decoder's source, nowhere else
    mapping: str = ""
    cs_tenant: str = ""
    cs_application: str = ""
    unknown_eui: str = ""
    dead_letter: int = 0
    dead_letter_message: str = ""
    token: str = ""             # the operator's integration token (global; the same for every tenant)

    def values(self) -> dict[str, Any]:
        """Parameter and field names -> this tenant's object, for filling requests (openapi_probe)."""
        return {
            "organization_id": self.org, "application_id": self.app, "device_id": self.device,
            "device_ids": [self.lorawan, self.device], "consumer_id": self.consumer,
            "subscription_id": self.subscription, "replay_id": self.replay, "consumer_ids": [self.consumer],
            "key_id": self.keys["admin"][0],
            "user_id": self.user,
            "decoder_id": self.decoder, "decoder": self.decoder, "dead_letter_id": self.dead_letter,
            "ids": [self.dead_letter], "dev_eui": self.unknown_eui, "mapping_id": self.mapping,
            "token_id": self.token, "tenant_id": self.cs_tenant, "chirpstack_tenant_id": self.cs_tenant,
            "message_id": self.dead_letter_message, "resource_id": self.device, "q": self.marker,
            "csv": (f"name,kind,application_id,dev_eui\nisolation-probe-http,http,{self.app},\n"
                    f"isolation-probe-lorawan,lorawan,{self.app},{self.dev_eui}\n"
                    f"isolation-probe-default-app,lorawan,,{self.dev_eui}\n"),
        }

    def secrets(self) -> dict[str, str]:
        """What must never reach another tenant: label -> value (names all carry the marker)."""
        found = {"a name (marker)": self.marker, "organization id": self.org, "application id": self.app,
                 "lorawan device id": self.lorawan, "http device id": self.device, "dev_eui": self.dev_eui,
                 "app_key": self.app_key, "ingest key": self.ingest_key, "consumer id": self.consumer,
                 "consumer secret": self.consumer_secret, "consumer header secret": self.header_secret,
                 "consumer URL token": self.url_token, "subscription id": self.subscription, "replay id": self.replay,
                 "user id": self.user,
                 "ChirpStack mapping id": self.mapping, "ChirpStack tenant id": self.cs_tenant,
                 "ChirpStack application id": self.cs_application, "unknown device EUI": self.unknown_eui,
                 "decoder source": self.source_token}
        for role, (key_id, key) in self.keys.items():
            found[f"{role} key id"] = key_id
            found[f"{role} key"] = key
        return {label: value.lower() for label, value in found.items() if value}

    def owned(self) -> set[str]:
        """Ids that make an item this tenant's when they appear in one of its OWNER_FIELDS."""
        return {self.org, self.app, self.lorawan, self.device, self.consumer, self.subscription, self.replay, self.user,
                self.mapping, self.decoder, self.unknown_eui, *(k for k, _ in self.keys.values())}


def codec(marker: str, token: str) -> str:
    return (f"// {marker} private codec\nvar {token} = 1;\n"
            f"function decodeUplink(input) {{ return {{data: {{n: input.bytes[0] * {token}}}}}; }}")


async def make_tenant(api: Api, label: str, hook_url: str, token_id: str) -> Tenant:
    """One organization with one of everything, created by the global admin."""
    t = Tenant(label, f"tenant{label}{uuid.uuid4().hex[:10]}", token=token_id)
    m = t.marker
    t.org = (await api.create("organizations", {"name": f"{m}-org", "description": f"{m} city"}))["id"]
    t.app = (await api.create("applications", {"organization_id": t.org, "name": f"{m}-app",
                                               "owner": f"{m}-owner"}))["id"]
    t.source_token = f"scale_{uuid.uuid4().hex[:12]}"
    t.decoder = (await api.create("decoders", {"id": f"{m}-codec", "organization_id": t.org,
                                               "vendor": f"{m}-vendor", "source": codec(m, t.source_token)}))["id"]
    t.dev_eui, t.app_key = uuid.uuid4().hex[:16], uuid.uuid4().hex
    t.lorawan = (await api.create("devices", {
        "application_id": t.app, "name": f"{m}-lorawan", "kind": "lorawan", "dev_eui": t.dev_eui,
        "app_key": t.app_key, "decoder": "elsys", "tags": {"site": f"{m}-site"}}))["id"]
    http = await api.create("devices", {"application_id": t.app, "name": f"{m}-http", "kind": "http",
                                        "decoder": "json"})
    t.device, t.ingest_key = http["id"], http["ingest_key"]
    t.consumer_secret, t.header_secret, t.url_token = (f"{kind}-{uuid.uuid4().hex}" for kind in
                                                       ("signing", "header", "urltoken"))
    t.consumer = (await api.create("consumers", {
        "organization_id": t.org, "name": f"{m}-consumer", "kind": "http", "url": f"{hook_url}?token={t.url_token}",
        "secret": t.consumer_secret, "headers": {"X-Probe": t.header_secret}}))["id"]
    t.subscription = (await api.create("subscriptions", {"consumer_id": t.consumer, "application_id": t.app}))["id"]
    replay = await api.client.post(f"/api/v1/consumers/{t.consumer}/replay",
                                   json={"from": (datetime.now(UTC) - timedelta(hours=1)).isoformat()})
    assert replay.status_code == 202, replay.text
    t.replay = replay.json()["id"]
    t.user = (await api.create("users", {"organization_id": t.org, "name": f"{m}-user",
                                         "email": f"{m}@example.org", "role": "admin"}))["id"]
    for role in ROLES:
        made = await api.create("api-keys", {"organization_id": t.org, "name": f"{m}-{role}", "role": role,
                                             "user_id": t.user})
        t.keys[role] = (made["id"], made["key"])
    t.cs_tenant, t.cs_application = str(uuid.uuid4()), str(uuid.uuid4())
    t.mapping = (await api.create(f"organizations/{t.org}/chirpstack-mappings", {"tenant_id": t.cs_tenant}))["id"]
    t.unknown_eui = uuid.uuid4().hex[:16]
    t.dead_letter_message = f"msg-{m}-dead"
    assert api.service.pool is not None
    async with api.service.pool.acquire() as conn:
        t.dead_letter = await conn.fetchval(
            "INSERT INTO dead_letters (consumer_id, message_id, body, attempts, reason, first_failed_at,"
            " last_error, last_response) VALUES ($1, $2, $3, 1, 'refused by the consumer', now(), $4, $5)"
            " RETURNING id", t.consumer, t.dead_letter_message, orjson.dumps({"note": f"{m}-dead-body"}),
            f"{m} answered 400", f"{m} says no")
        await conn.execute(
            "INSERT INTO unknown_devices (source, identifier, first_seen, last_seen, count, detail)"
            " VALUES ('chirpstack-mqtt', $1, now(), now(), 3, $2)", t.unknown_eui,
            {"tenant_id": t.cs_tenant, "application_id": t.cs_application, "device_name": f"{m}-heard"})
    return t


async def revoked_key(api: Api, t: Tenant) -> str:
    made = await api.create("api-keys", {"organization_id": t.org, "name": f"{t.marker}-revoked", "role": "admin"})
    r = await api.client.post(f"/api/v1/api-keys/{made['id']}/revoke")
    assert r.status_code == 200, r.text
    return str(made["key"])


async def ingest(base_url: str, t: Tenant) -> int:
    """One message from the tenant's http device with its ingest key; the answer's status."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as c:
        r = await c.post("/ingest/http", headers={"Authorization": f"ApiKey {t.ingest_key}"},
                         json={"note": f"{t.marker}-latest", "temperature": 21.5})
    return r.status_code


async def delivered_and_signed(got: Received, count: int, t: Tenant) -> bool:
    """Wait for the ``count``-th delivery to the tenant's webhook; whether its signature verifies with the
    secret the tenant was created with (False when it does not come)."""
    try:
        await got.wait_for(lambda bodies: len(bodies) >= count)
    except TimeoutError:
        return False
    headers = {k.lower(): v for k, v in got.headers[count - 1].items()}
    return verify(t.consumer_secret, int(headers["x-iotd-timestamp"]), got.raw[count - 1],
                  headers["x-iotd-signature"])


@dataclass
class Snapshot:
    others: dict[str, Any]      # what is not the tenant's: key -> normalized item or answer
    own: dict[str, Any]         # the tenant's own items in collections


def _normalized(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _normalized(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_normalized(v) for v in value]
    return value


def owned_by(item: Mapping[str, Any], ids: set[str]) -> bool:
    return any(str(item.get(f)).lower() in ids for f in OWNER_FIELDS if item.get(f) is not None)


async def snapshot(client: httpx.AsyncClient, doc: Mapping[str, Any], ops: list[Operation], tenant: Tenant,
                   other: Tenant) -> Snapshot:
    """Every GET of the document as ``client`` (the global admin): collections split into ``tenant``'s items
    and the rest, and single objects read at ``other``'s ids."""
    mine = {i.lower() for i in tenant.owned()}
    snap = Snapshot({}, {})
    for op in ops:
        if op.method != "get":
            continue
        probe = build(doc, op, other.values(), other.values(), filters=False)
        r = await client.get(probe.path, params=tuple(probe.params))
        if not op.is_collection_read:
            snap.others[op.name] = (r.status_code, _normalized(answer_body(r)))
            continue
        body = answer_body(r)
        if isinstance(body, dict) and isinstance(body.get("items"), list):
            assert body.get("total", 0) <= PAGE_SIZE, f"{op.name}: more than one page; the snapshot would miss some"
            for item in body["items"]:
                key = f"{op.name} {item.get('id', item.get('identifier', orjson.dumps(item).decode()))}"
                (snap.own if owned_by(item, mine) else snap.others)[key] = _normalized(item)
        elif isinstance(body, str):
            for line in body.splitlines():
                own = any(i in line.lower() for i in mine)
                (snap.own if own else snap.others)[f"{op.name} {line}"] = line
        else:
            snap.others[op.name] = (r.status_code, _normalized(body))
    return snap


def answer_body(r: httpx.Response) -> Any:
    """The answer as JSON when it says it is JSON (and is), else as text."""
    if r.headers.get("content-type", "").startswith("application/json"):
        try:
            return r.json()
        except ValueError:
            return r.text
    return r.text


SETTLE_S = 1.2   # the consumer delivery log (StatsWriter) is written every second


async def stable_snapshot(client: httpx.AsyncClient, doc: Mapping[str, Any], ops: list[Operation], tenant: Tenant,
                          other: Tenant, strict: bool = True, tries: int = 20) -> Snapshot:
    """A snapshot once two in a row agree (batched state writes have landed); ``strict=False`` returns the
    last one anyway (after a run, the comparison reports what keeps changing). Two snapshots lie more than
    one flush of the slowest batched writer apart (``SETTLE_S``), or both could precede a flush."""
    last = await snapshot(client, doc, ops, tenant, other)
    for attempt in range(tries):
        await asyncio.sleep(SETTLE_S)
        now = await snapshot(client, doc, ops, tenant, other)
        if now.others == last.others or (not strict and attempt == tries - 1):
            return now
        moving = sorted(k for k in now.others.keys() | last.others.keys() if now.others.get(k) != last.others.get(k))
        last = now
    raise AssertionError("what the global admin sees keeps changing while nobody acts: " + ", ".join(moving)[:2000])
