"""The distributor's in-memory view of the registry, reloaded on PostgreSQL NOTIFY.

A ``Snapshot`` is immutable and swapped whole, so the hot path reads dicts without locks or
queries. ``RegistryCache`` listens on ``iotd_registry``; a burst of changes causes one reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
import structlog

from registry.records import (
    Application,
    Consumer,
    Device,
    IntegrationToken,
    JsDecoderRecord,
    Organization,
    Subscription,
)
from registry.secrets import SecretBox
from registry.tenancy import owner

log = structlog.get_logger("iotd.registry.cache")
CHANNEL = "iotd_registry"


@dataclass
class Snapshot:
    organizations: dict[str, Organization] = field(default_factory=dict)
    applications: dict[str, Application] = field(default_factory=dict)
    devices: dict[str, Device] = field(default_factory=dict)
    by_dev_eui: dict[str, Device] = field(default_factory=dict)
    by_ingest_key: dict[str, Device] = field(default_factory=dict)   # sha256 of key -> device
    ingest_key_of: dict[str, str] = field(default_factory=dict)      # device id -> sha256 of its key
    consumers: dict[str, Consumer] = field(default_factory=dict)
    subscriptions: list[Subscription] = field(default_factory=list)
    js_decoders: dict[str, JsDecoderRecord] = field(default_factory=dict)
    integration_tokens: dict[str, IntegrationToken] = field(default_factory=dict)   # sha256 of token -> token
    chirpstack_owners: dict[tuple[str, str], str] = field(default_factory=dict)    # registry.tenancy.Owners
    loaded_at: float = 0.0
    gated: bool = False     # some subscription has a backfill's seam (``live_consumers``)
    _routes: dict[str, tuple[Consumer, ...]] = field(default_factory=dict)
    _gates: dict[str, dict[str, float]] = field(default_factory=dict)

    def consumers_for(self, device: Device) -> tuple[Consumer, ...]:
        """The enabled consumers of the device's organization whose subscriptions match it (memoized)."""
        found = self._routes.get(device.id)
        if found is None:
            ids: dict[str, None] = {}
            for sub in self.subscriptions:
                consumer = self.consumers.get(sub.consumer_id)
                if (consumer is not None and consumer.enabled and consumer.organization_id == device.organization_id
                        and sub.matches(device)):
                    ids[consumer.id] = None
            found = tuple(self.consumers[i] for i in ids)
            self._routes[device.id] = found
        return found

    def live_consumers(self, device: Device, received_at: float) -> tuple[Consumer, ...]:
        """``consumers_for`` without the consumers whose every subscription matching the device goes live only
        after ``received_at``: a backfill (``distributor.replay``) delivers those messages from the history, so
        each message goes out once, live or as part of the backfill, whichever instance handles it."""
        found = self.consumers_for(device)
        if not self.gated:
            return found
        gates = self._gates.get(device.id)
        if gates is None:
            gates = self._gates[device.id] = self._gates_of(device, found)
        if not gates:
            return found
        return tuple(c for c in found if received_at >= gates.get(c.id, received_at))

    def _gates_of(self, device: Device, consumers: tuple[Consumer, ...]) -> dict[str, float]:
        """Per consumer of the device, the earliest time one of its matching subscriptions is live (only those
        with a seam still ahead of some message: a subscription without one is live for every message)."""
        wanted = {c.id for c in consumers}
        earliest: dict[str, float] = {}
        for sub in self.subscriptions:
            if sub.consumer_id in wanted and sub.matches(device):
                start = sub.live_from if sub.live_from is not None else float("-inf")
                earliest[sub.consumer_id] = min(earliest.get(sub.consumer_id, start), start)
        return {cid: at for cid, at in earliest.items() if at != float("-inf")}

    def add_device(self, row: asyncpg.Record) -> None:
        dev = _device(row, self.applications, self.organizations)
        self.devices[dev.id] = dev
        if dev.dev_eui:
            self.by_dev_eui[dev.dev_eui] = dev
        key = row["ingest_key_hash"]
        if key:
            self.by_ingest_key[key] = dev
            self.ingest_key_of[dev.id] = key

    def replace_devices(self, ids: set[str], rows: list[asyncpg.Record]) -> None:
        """Apply a change to these devices in place: ``rows`` is what the database holds for them now (a
        device without a row was deleted). The event loop is the only reader, so no one sees a half-applied
        change."""
        for device_id in ids:
            old = self.devices.pop(device_id, None)
            self._routes.pop(device_id, None)
            self._gates.pop(device_id, None)
            key = self.ingest_key_of.pop(device_id, None)
            if old is None:
                continue
            if old.dev_eui and self.by_dev_eui.get(old.dev_eui) is old:
                del self.by_dev_eui[old.dev_eui]
            if key is not None and self.by_ingest_key.get(key) is old:
                del self.by_ingest_key[key]
        for row in rows:
            self.add_device(row)

    def chirpstack_owner(self, tenant_id: str | None, application_id: str | None) -> str | None:
        """The organization a ChirpStack event belongs to (``registry.tenancy`` rule 1); None when unmapped."""
        return owner(self.chirpstack_owners, tenant_id, application_id)

    def lorawan_device(self, dev_eui: str, tenant_id: str | None, application_id: str | None) -> Device | None:
        """The device registered with ``dev_eui``, unless the event's ChirpStack tenant (or application) is
        mapped to another organization than the device's: then it is an unknown device (``registry.tenancy``)."""
        device = self.by_dev_eui.get(dev_eui)
        if device is not None and self.chirpstack_owners:
            found = owner(self.chirpstack_owners, tenant_id, application_id)
            if found is not None and found != device.organization_id:
                return None
        return device

    def unmapped_organizations(self) -> int:
        """Organizations no ChirpStack tenant is mapped to (``registry.tenancy`` rule 3)."""
        return len(set(self.organizations) - set(self.chirpstack_owners.values()))


# a seam only matters for messages received before it, which arrive within seconds: an old one is dropped
SUBSCRIPTION_COLUMNS = ("SELECT id, consumer_id, application_id, device_ids, decoder, tags, created_at,"
                        " CASE WHEN live_from > now() - interval '1 day' THEN live_from END AS live_from"
                        " FROM subscriptions")
DEVICE_BATCH = 5000   # rows per round trip while loading devices
DEVICE_COLUMNS = ("SELECT id, application_id, name, kind, decoder, dev_eui, imei, ingest_key_hash, tags, lat, lon"
                  " FROM devices")
DEVICES_PREFIX = "devices:"   # a NOTIFY naming the devices a statement changed (migration 0009)
NO_TAGS: dict[str, str] = {}   # shared by every device without tags; records are never changed in place


def _device(row: asyncpg.Record, applications: dict[str, Application],
            organizations: dict[str, Organization]) -> Device:
    """A device with its organization's and application's names, read here once per load, not per message.

    Memory (a million devices must fit in well under 1 GiB, issue 16): values many devices share (the
    application and organization ids and names, kind, decoder, an empty tag set) are one object each,
    not a copy per device."""
    app_id = str(row["application_id"])
    app = applications.get(app_id)
    org_id = app.organization_id if app is not None else ""
    org = organizations.get(org_id)
    decoder = row["decoder"]
    tags = row["tags"]
    return Device(
        id=str(row["id"]), application_id=app.id if app is not None else app_id, organization_id=org_id,
        name=row["name"], kind=sys.intern(row["kind"]), decoder=sys.intern(decoder) if decoder else decoder,
        dev_eui=row["dev_eui"], imei=row["imei"],
        tags={str(k): str(v) for k, v in tags.items()} if tags else NO_TAGS, lat=row["lat"], lon=row["lon"],
        organization_name=org.name if org is not None else "", application_name=app.name if app is not None else "",
    )


def _consumer(row: asyncpg.Record, box: SecretBox) -> Consumer:
    """A consumer whose credentials cannot be decrypted is kept disabled (and said so), not fatal to the cache."""
    headers: dict[str, Any] = {}
    secret: str | None = None
    url_full: str | None = None
    enabled: bool = row["enabled"]
    options: dict[str, Any] = dict(row["options"] or {})
    try:
        if row["headers_enc"] is not None:
            headers = orjson.loads(box.decrypt(row["headers_enc"]))
        if row["secret_enc"] is not None:
            secret = box.decrypt(row["secret_enc"])
        if row["url_enc"] is not None:       # the URL's credentials (``url`` holds the masked form)
            url_full = box.decrypt(row["url_enc"])
    except ValueError as exc:
        log.error("consumer disabled: its credentials cannot be decrypted", consumer=str(row["id"]), error=str(exc))
        enabled = False
        options["error"] = str(exc)
    return Consumer(
        id=str(row["id"]), organization_id=str(row["organization_id"]), name=row["name"], kind=row["kind"],
        url=row["url"], format=row["format"], secret=secret,
        headers={str(k): str(v) for k, v in headers.items()}, qos=row["qos"], batch_size=row["batch_size"],
        batch_wait_ms=row["batch_wait_ms"], timeout_s=row["timeout_s"], enabled=enabled, options=options,
        url_full=url_full,
    )


async def load_snapshot(conn: asyncpg.Connection, box: SecretBox) -> Snapshot:
    """Read the whole registry in a handful of queries (one repeatable-read transaction)."""
    snap = Snapshot(loaded_at=time.time())
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        for r in await conn.fetch("SELECT id, name FROM organizations"):
            snap.organizations[str(r["id"])] = Organization(str(r["id"]), r["name"])
        for r in await conn.fetch("SELECT id, organization_id, name, retention_days FROM applications"):
            snap.applications[str(r["id"])] = Application(str(r["id"]), str(r["organization_id"]), r["name"],
                                                          r["retention_days"])
        # a cursor, not one fetch: a million rows at once would leave their memory behind after the load
        async for r in conn.cursor(DEVICE_COLUMNS, prefetch=DEVICE_BATCH):
            snap.add_device(r)
        for r in await conn.fetch("SELECT * FROM consumers"):
            c = _consumer(r, box)
            snap.consumers[c.id] = c
        subs = await conn.fetch(SUBSCRIPTION_COLUMNS)
        for r in subs:
            snap.subscriptions.append(Subscription(
                id=str(r["id"]), consumer_id=str(r["consumer_id"]),
                application_id=str(r["application_id"]) if r["application_id"] else None,
                device_ids=tuple(str(d) for d in r["device_ids"]), decoder=r["decoder"],
                tags={str(k): str(v) for k, v in (r["tags"] or {}).items()},
                since=r["created_at"].timestamp(),
                live_from=r["live_from"].timestamp() if r["live_from"] is not None else None,
            ))
        snap.gated = any(s.live_from is not None for s in snap.subscriptions)
        for r in await conn.fetch("SELECT id, organization_id, dialect, source, timeout_ms, version, vendor, model"
                                  " FROM js_decoders"):
            org = r["organization_id"]
            snap.js_decoders[r["id"]] = JsDecoderRecord(
                r["id"], str(org) if org is not None else None, r["dialect"], r["source"], r["timeout_ms"],
                r["version"], r["vendor"], r["model"])
        for r in await conn.fetch("SELECT id, name, token_hash, chirpstack_tenant_id FROM integration_tokens"
                                  " WHERE revoked_at IS NULL"):
            tenant = r["chirpstack_tenant_id"]
            snap.integration_tokens[r["token_hash"]] = IntegrationToken(
                str(r["id"]), r["name"], str(tenant) if tenant is not None else None)
        for r in await conn.fetch("SELECT organization_id, tenant_id, application_id FROM chirpstack_mappings"):
            app = r["application_id"]
            snap.chirpstack_owners[(str(r["tenant_id"]), str(app) if app is not None else "")] = str(
                r["organization_id"])
    return snap


class RegistryCache:
    """Holds the current Snapshot and keeps it current.

    A change to a few devices (NOTIFY ``devices:<id>,...``, migration 0009) is applied in place: those
    devices are read again and replaced (one small query, milliseconds at any registry size). Any other
    change (organizations, applications, consumers, subscriptions, tokens, decoders, an import of more than
    200 devices), a lost listener or a ``caught_up`` without device ids reloads the whole snapshot, which
    takes ~20 s and twice the devices' memory at a million devices. Both kinds of pass run one at a time in
    the reload task, in the order the changes arrived.
    """

    def __init__(self, pool: asyncpg.Pool, box: SecretBox, debounce_s: float = 0.05) -> None:
        self._pool = pool
        self._box = box
        self._debounce_s = debounce_s
        self.snapshot = Snapshot()
        self.reloads = 0
        self.last_reload_s = 0.0
        self._dirty = asyncio.Event()
        self._listener: asyncpg.Connection | None = None
        self._lost = False
        self._task: asyncio.Task[None] | None = None
        self.on_reload: list[Callable[[Snapshot], None]] = []
        self._begun = 0                         # reloads begun; each one's snapshot sees what was committed before
        self._in_use = 0                        # the number of the reload whose snapshot is in use
        self._progress = asyncio.Event()        # set (and replaced) after every reload
        self._changed_devices: set[str] = set()  # devices named by NOTIFY since the last pass
        self._full = False                      # something else changed: the next pass reloads everything
        self.device_updates = 0

    async def start(self) -> None:
        await self._listen()
        await self.reload()
        self._task = asyncio.create_task(self._reload_loop(), name="registry-cache")

    async def _listen(self) -> None:
        """A dedicated connection for LISTEN; when it dies (database restart) the loop reconnects."""
        conn = await self._pool.acquire()
        try:
            await conn.add_listener(CHANNEL, self._notified)
            conn.add_termination_listener(self._listener_lost)
        except BaseException:
            await self._pool.release(conn)
            raise
        self._listener = conn

    def _notified(self, connection: object, pid: int, channel: str, payload: str) -> None:
        if payload.startswith(DEVICES_PREFIX):
            self._changed_devices.update(payload[len(DEVICES_PREFIX):].split(","))
        else:
            self._full = True
        self._dirty.set()

    def _listener_lost(self, *_: object) -> None:
        self._lost = True
        self._dirty.set()

    async def reload(self) -> None:
        """Load the whole registry; covers every change notified before it began."""
        started = time.perf_counter()
        self._begun += 1
        number = self._begun
        self._full = False
        self._changed_devices = set()
        async with self._pool.acquire() as conn:
            snap = await load_snapshot(conn, self._box)
        self.snapshot = snap
        self.reloads += 1
        self.last_reload_s = time.perf_counter() - started
        self._done(number)
        log.debug("registry reloaded", devices=len(snap.devices), consumers=len(snap.consumers),
                  seconds=round(self.last_reload_s, 4))

    async def update_devices(self) -> None:
        """Read the devices named since the last pass again and replace them in the snapshot in use."""
        self._begun += 1
        number = self._begun
        ids, self._changed_devices = self._changed_devices, set()
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(DEVICE_COLUMNS + " WHERE id = ANY($1::uuid[])", list(ids))
        self.snapshot.replace_devices(ids, rows)
        self.device_updates += 1
        self._done(number)
        log.debug("registry devices updated", devices=len(ids))

    def _done(self, number: int) -> None:
        self._in_use = number
        self._progress.set()
        self._progress = asyncio.Event()
        for callback in self.on_reload:
            callback(self.snapshot)

    async def caught_up(self, timeout_s: float = 2.0, devices: Iterable[str] | None = None) -> bool:
        """Wait until the snapshot in use was loaded after this call, so it holds every change committed before.

        The API awaits this after a change that must take effect at once (a rotated ingest key, a deleted
        device, a revoked integration token): the answer then means "done on this instance". Other
        instances follow through NOTIFY within their own reload time. False when ``timeout_s`` passed first.
        ``devices``: the change touched only these devices, so reading them again is enough (milliseconds,
        where a whole reload of a million devices takes ~20 s, longer than any API answer should wait).
        """
        wanted = self._begun + 1
        if devices is None:
            self._full = True
        else:   # the change named them: reading them again is enough (and NOTIFY may not have arrived yet)
            self._changed_devices.update(devices)
        self._dirty.set()
        try:
            async with asyncio.timeout(timeout_s):
                while self._in_use < wanted:
                    await self._progress.wait()
        except TimeoutError:
            return False
        return True

    async def _reload_loop(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self._debounce_s)
            self._dirty.clear()
            try:
                if self._lost:
                    await self._relisten()
                    self._full = True
                if self._full or not self._changed_devices:
                    await self.reload()
                else:
                    await self.update_devices()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.error("registry reload failed; keeping the previous snapshot", error=str(exc))
                self._full = True     # what this pass was to apply is known only to the database now
                await asyncio.sleep(1)
                self._dirty.set()

    async def _relisten(self) -> None:
        """After losing the LISTEN connection: listen again, then reload (changes may have been missed)."""
        old, self._listener = self._listener, None
        if old is not None:
            with contextlib.suppress(Exception):
                await self._pool.release(old)
        await self._listen()
        self._lost = False
        log.info("registry change listener reconnected")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._listener is not None:   # lost and not yet replaced: asyncpg detached it, and it only raises
            listener, self._listener = self._listener, None
            with contextlib.suppress(asyncpg.InterfaceError):
                if not listener.is_closed():
                    await listener.remove_listener(CHANNEL, self._notified)
            with contextlib.suppress(Exception):
                await self._pool.release(listener)
