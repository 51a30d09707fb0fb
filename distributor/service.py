"""The service's lifecycle: start-up owns the resources, shutdown drains them in order.

Order on start: database (migrations) → registry cache → spill store and state writer →
consumer lanes → pipeline → HTTP → MQTT source. On stop the reverse, beginning with intake:
the source stops reading and lets in-flight messages finish, lanes deliver what they hold
until the drain deadline and spill the rest, and only then do the stores close.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import structlog

from decoders import catalog
from distributor import heap
from distributor.delivery.backlog import Backlog
from distributor.delivery.dispatcher import Dispatcher
from distributor.delivery.policy import CircuitBreaker, RetryPolicy
from distributor.delivery.retry import RetryWorker
from distributor.delivery.spill import SpillStore
from distributor.delivery.stats import StatsWriter
from distributor.history import MessageStore
from distributor.http_app import EmbeddedServer, create_app, start_http
from distributor.js_codecs import JsDecoders
from distributor.js_metrics import JsDecoderCollector
from distributor.js_pool import JsPool
from distributor.logging import install_names
from distributor.metrics import ConsumerInfoCollector, Metrics
from distributor.pipeline import Pipeline
from distributor.replay import ReplayWorker
from distributor.settings import Settings
from distributor.sinks.base import DeliveryError, Outgoing, Sink
from distributor.sources.chirpstack_mqtt import ChirpStackMqttSource, broker_address
from distributor.startup import (
    DATABASE_ERRORS,
    StartupError,
    broker_problem,
    broker_retry_delay,
    database_problem,
    http_problem,
    probe_port,
)
from registry.api import ApiContext
from registry.cache import RegistryCache, Snapshot
from registry.db import create_pool, migrate
from registry.history_partitions import maintain
from registry.installation import open_secret_box
from registry.periodic import run_every
from registry.records import Consumer
from registry.secrets import SecretBox, check_key_material
from registry.state_writer import StateWriter
from registry.targets import TargetPolicy

log = structlog.get_logger("iotd.service")


class UnusableSink:
    """Stands in for a consumer whose stored configuration no sink accepts: its deliveries fail (retryable,
    so they wait in pending deliveries and are dead-lettered by the retry policy) and a fix of the consumer
    opens a new lane; the other consumers are not held up by it."""

    async def start(self) -> None:
        return None

    async def send(self, batch: list[Outgoing]) -> None:
        raise DeliveryError("invalid consumer configuration")

    async def close(self) -> None:
        return None


def default_sink_factory(client_id: str, targets: TargetPolicy) -> Callable[[Consumer], Sink]:
    """Sinks for consumers, connecting only where ``targets`` allows (``distributor.sinks.guard``)."""
    from distributor.sinks.http import HttpSink
    from distributor.sinks.mqtt import MqttSink

    def make(consumer: Consumer) -> Sink:
        try:
            if consumer.kind == "mqtt":
                return MqttSink(consumer, client_id=f"{client_id}-out-{consumer.id[:8]}", policy=targets)
            return HttpSink(consumer, policy=targets)
        except Exception as exc:  # one consumer's bad configuration must not stop the lanes of the others
            log.error("consumer configuration unusable; its deliveries fail until it is changed",
                      consumer=consumer.id, error=type(exc).__name__)
            return UnusableSink()

    return make


def late_seams(snapshot: Snapshot, seen: set[str] | None) -> set[str]:
    """Warn of a backfilling subscription this instance loaded only after its seam (``distributor.replay``):
    messages this instance handled between the seam and now went neither live nor into the backfill. (At
    start-up nothing was handled before, so the first snapshot only fills ``seen``.) Returns the seams known now."""
    now = time.time()
    known = set()
    for sub in snapshot.subscriptions:
        if sub.live_from is None:
            continue
        known.add(sub.id)
        if seen is not None and sub.id not in seen and sub.live_from < now:
            log.warning("a backfilling subscription reached this instance after its seam; replay the gap to the"
                        " consumer if this instance handled its messages meanwhile", subscription=sub.id,
                        consumer=sub.consumer_id, late_by_s=round(now - sub.live_from, 3))
    return known


class _RegistryNames:
    """Names for log lines from the registry cache in memory (``distributor.logging.install_names``)."""

    def __init__(self, cache: RegistryCache) -> None:
        self._cache = cache

    def consumer_name(self, consumer_id: str) -> str | None:
        consumer = self._cache.snapshot.consumers.get(consumer_id)
        return consumer.name if consumer is not None else None

    def device_names(self, device_id: str) -> tuple[str, str | None] | None:
        device = self._cache.snapshot.devices.get(device_id)
        return (device.name, device.dev_eui) if device is not None else None


class Service:
    box: SecretBox          # opened at start: the key is derived with the installation's salt (registry.installation)
    cache: RegistryCache    # made at start, once the database is open

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        if not settings.database_url:
            raise ValueError("IOTD_DATABASE_URL is not set (or run `iotd demo` for an embedded database)")
        check_key_material(settings.secret_key)
        self.targets = TargetPolicy.from_setting(settings.consumer_allowed_networks)
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.pool: asyncpg.Pool | None = None
        self.source: ChirpStackMqttSource | None = None
        self.http_port = settings.http_port
        self._http: tuple[EmbeddedServer, asyncio.Task[None]] | None = None
        self._stop = asyncio.Event()
        self._sync_task: asyncio.Task[None] | None = None
        self.api_context: ApiContext | None = None
        self.pipeline: Pipeline | None = None
        self._broker_task: asyncio.Task[None] | None = None
        self.broker_error: str | None = None     # why the broker is not connected yet (for /readyz)
        self._reloads_seen = 0                   # full registry reloads already frozen (distributor/heap.py)
        self._history_task: asyncio.Task[None] | None = None
        self._seams_seen: set[str] | None = None    # subscriptions with a backfill's seam, known since start

    async def start(self) -> None:
        """Start everything; an operator's problem (database, port, settings) is a ``StartupError`` of one line,
        and whatever was started before it is closed again."""
        try:
            await self._start()
        except BaseException:
            await self._abandon()
            raise

    async def _start(self) -> None:
        s = self.settings
        assert s.database_url is not None
        self._check_broker_url()
        try:
            await asyncio.to_thread(probe_port, s.http_host, s.http_port)
        except OSError as exc:
            raise StartupError(http_problem(exc, s.http_host, s.http_port)) from None
        try:
            self.pool = await create_pool(s.database_url, min_size=2, max_size=10)
            async with self.pool.acquire() as conn:
                applied = await migrate(conn)
                self.box = await open_secret_box(conn, s.secret_key)
        except ValueError as exc:
            if self.pool is not None:   # the database answered: the secret key does not open it
                raise StartupError(str(exc)) from None
            raise StartupError(database_problem(exc, s.database_url)) from None
        except DATABASE_ERRORS as exc:
            raise StartupError(database_problem(exc, s.database_url)) from None
        if applied:
            log.info("database migrated", applied=applied)
        self.cache = RegistryCache(self.pool, self.box)
        await self.cache.start()
        install_names(_RegistryNames(self.cache))
        self.metrics.registry.register(ConsumerInfoCollector(self.cache))
        if s.run_api:
            self.api_context = ApiContext(self.pool, self.box, self.targets, backfill_seam_s=s.backfill_seam_s)
        if s.run_distributor:
            await self._start_distributor()
        try:
            server, task, self.http_port = await start_http(create_app(self), s.http_host, s.http_port)
        except OSError as exc:   # taken between the probe and now
            raise StartupError(http_problem(exc, s.http_host, s.http_port)) from None
        self._http = (server, task)
        heap.settle()   # everything start-up loaded, before the first message: distributor/heap.py
        if s.run_distributor and s.mqtt_url:
            assert self.pipeline is not None
            self.source = ChirpStackMqttSource.from_settings(s, self.pipeline, self.metrics)
            if not await self._connect_broker(attempt=1):
                self._broker_task = asyncio.get_running_loop().create_task(self._keep_connecting(),
                                                                           name="broker-connect")
        log.info("iotd started", http_port=self.http_port, mqtt=self.source is not None, api=s.run_api,
                 distributor=s.run_distributor, devices=len(self.cache.snapshot.devices),
                 consumers=len(self.cache.snapshot.consumers))

    def _check_broker_url(self) -> None:
        url = self.settings.mqtt_url
        if self.settings.run_distributor and url:
            try:
                broker_address(url)
            except ValueError as exc:
                raise StartupError(f"IOTD_MQTT_URL: {exc}") from None

    async def _connect_broker(self, attempt: int) -> bool:
        """One attempt to connect the ChirpStack source; on failure, say why (log and ``/readyz``)."""
        assert self.source is not None and self.settings.mqtt_url is not None
        try:
            await self.source.start()
        except Exception as exc:   # refused, unreachable, unresolvable, CONNACK refused, TLS: all retried
            host, port, *_ = broker_address(self.settings.mqtt_url)
            self.broker_error = broker_problem(exc, host, port)
            delay = broker_retry_delay(attempt)
            log.warning("ChirpStack broker not reachable; retrying", error=self.broker_error, attempt=attempt,
                        retry_in_s=delay)
            with contextlib.suppress(Exception):   # drop a half-made connection; the next attempt makes a new one
                await asyncio.wait_for(self.source.client.disconnect(), 2)
            return False
        if attempt > 1:
            log.info("ChirpStack broker reached after retrying", attempts=attempt)
        self.broker_error = None
        return True

    async def _keep_connecting(self) -> None:
        """Start-up with the broker down: retry with backoff (1 s doubling to 30 s) until it answers."""
        attempt = 1
        while True:
            await asyncio.sleep(broker_retry_delay(attempt))
            attempt += 1
            if await self._connect_broker(attempt):
                return

    async def _start_distributor(self) -> None:
        s = self.settings
        assert self.pool is not None
        set_aside = self.metrics.set_aside
        self.backlog = Backlog(self.metrics.pending)      # pending deliveries per consumer, kept current
        self.spill = SpillStore(self.pool, on_set_aside=lambda table, what, n: set_aside.labels(table, what).inc(n),
                                on_stored=self.backlog.stored)
        self.state = StateWriter(self.pool, s.state_flush_interval_s,
                                 on_dropped=lambda table, what, n: set_aside.labels(table, what).inc(n))
        self.history: MessageStore | None = None
        if s.history:
            async with self.pool.acquire() as conn:   # today's partitions before the first message
                await maintain(conn)
            self.history = MessageStore(self.pool, on_dropped=lambda n: set_aside.labels("messages", "dropped").inc(n))
            await self.history.start()
            self._history_task = asyncio.create_task(
                run_every(s.history_maintenance_s, self._maintain_history, log, "message history maintenance"),
                name="history-maintenance")
        policy = RetryPolicy(s.retry_base_s, s.retry_max_backoff_s, s.retry_max_attempts, s.retry_max_age_s)
        self.dispatcher = Dispatcher(default_sink_factory(s.mqtt_client_id, self.targets), self.spill, self.metrics,
                                     queue_size=s.consumer_queue_size, policy=policy,
                                     breaker=lambda: CircuitBreaker(s.circuit_threshold, s.circuit_cooldown_s,
                                                                    s.circuit_max_cooldown_s,
                                                                    s.circuit_backlog_probe_s),
                                     max_wait_s=s.lane_max_wait_s, backlog=self.backlog)
        self.retry = RetryWorker(self.pool, lambda: self.dispatcher.lanes, self.metrics, instance=s.mqtt_client_id,
                                 poll_s=s.retry_poll_s, lease_s=s.retry_lease_s,
                                 retention_days=s.dead_letter_retention_days, backlog=self.backlog)
        self.consumer_stats = StatsWriter(self.pool, lambda: {cid: lane.stats for cid, lane in
                                                              self.dispatcher.lanes.items()})
        await self.spill.start()
        await self.state.start()
        await self._on_registry(self.cache.snapshot)
        self.cache.on_reload.append(self._schedule_sync)
        await self.retry.start()
        await self.consumer_stats.start()
        catalog.load_all()   # the built-in decoders load now, not with the first uplink
        self.js_decoders = JsDecoders()
        self.js_decoders.sync(self.cache.snapshot.js_decoders)
        await self.js_decoders.statuses.load(self.pool)   # battery and margin for OS2iot decoders
        self.js_pool = JsPool(s.js_workers, s.js_max_workers_per_organization, s.js_queue_per_organization,
                              s.js_suspend_after_timeouts, s.js_suspend_s)
        await self.js_pool.start()
        if self.cache.snapshot.js_decoders:  # workers start in the background; otherwise with the first uplink
            self.js_pool.spawn()
        self.metrics.registry.register(JsDecoderCollector(self.js_pool))
        self.pipeline = Pipeline(self.cache, self.dispatcher, self.state, self.metrics,
                                 dedup_window_s=s.dedup_window_s, js=self.js_decoders, js_pool=self.js_pool,
                                 history=self.history)
        self.replays = ReplayWorker(self.pool, self.cache, self.dispatcher, instance=s.mqtt_client_id,
                                    pipeline=self.pipeline, poll_s=s.replay_poll_s, lease_s=s.retry_lease_s,
                                    settle_s=s.replay_settle_s, max_jobs=s.replay_max_jobs)
        await self.replays.start()

    async def _maintain_history(self) -> None:
        assert self.pool is not None
        async with self.pool.acquire() as conn:
            done = await maintain(conn)
        if done.created or done.dropped or done.erased:
            log.info("message history maintained", partitions_created=done.created, partitions_dropped=done.dropped,
                     late_messages_of_erased_devices=done.erased)

    def _schedule_sync(self, snapshot: Snapshot) -> None:
        if self.cache.reloads != self._reloads_seen:   # a whole new snapshot, not a device update
            self._reloads_seen = self.cache.reloads
            heap.keep_snapshot()
        if self.pipeline is not None:  # at once, in the reload itself: records only, workers load codecs lazily
            self.js_decoders.sync(snapshot.js_decoders)
        self._sync_task = asyncio.get_running_loop().create_task(self._on_registry(snapshot))

    async def _on_registry(self, snapshot: Snapshot) -> None:
        self._seams_seen = late_seams(snapshot, self._seams_seen)
        self.metrics.registry_devices.set(len(snapshot.devices))
        self.metrics.registry_reload_seconds.set(self.cache.last_reload_s)
        await self.dispatcher.sync(snapshot.consumers)

    async def readiness(self) -> dict[str, dict[str, Any]]:
        checks: dict[str, dict[str, Any]] = {}
        try:
            assert self.pool is not None
            async with asyncio.timeout(2):
                await self.pool.fetchval("SELECT 1")
            checks["database"] = {"ok": True}
        except (OSError, asyncpg.PostgresError, TimeoutError, AssertionError) as exc:
            checks["database"] = {"ok": False, "error": str(exc) or type(exc).__name__}
        if self.source is not None:
            connected = self.source.connected
            checks["broker"] = {"ok": connected}
            if not connected and self.broker_error is not None:
                checks["broker"]["error"] = f"{self.broker_error}; retrying (at most every 30 s)"
        return checks

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Start, serve until SIGTERM/SIGINT, then drain and stop."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        await self.start()
        await self._stop.wait()
        log.info("stopping: draining in-flight work", deadline_s=self.settings.drain_timeout_s)
        await self.stop()

    async def stop(self) -> None:
        timeout = self.settings.drain_timeout_s
        if self._broker_task is not None:
            self._broker_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._broker_task
        if self.source is not None:
            await self.source.stop(drain_timeout=timeout)
        if self.pipeline is not None:
            await self.js_pool.close(drain_s=min(2.0, timeout))  # what still waits goes out undecoded
            await self.replays.close()
            await self.retry.close()
            await self.dispatcher.drain(timeout)
            await self.spill.drain(timeout)
            if self.history is not None:
                await self.history.drain(timeout)
        if self._http is not None:
            server, task = self._http
            server.should_exit = True
            await task
        if self.pipeline is not None:
            await self.dispatcher.close()
            await self.consumer_stats.close()
            await self.spill.close()
            if self._history_task is not None:
                self._history_task.cancel()
            if self.history is not None:
                await self.history.close()
            await self.state.close()
        cache: RegistryCache | None = getattr(self, "cache", None)   # absent when the start failed before it
        if cache is not None:
            await cache.close()
        install_names(None)
        if self.pool is not None:
            await self.pool.close()
        log.info("iotd stopped")

    async def _abandon(self) -> None:
        """After a failed start: close what was opened, quietly, within a few seconds."""
        try:
            async with asyncio.timeout(max(5.0, self.settings.drain_timeout_s + 5)):
                if self.pipeline is not None or self._http is not None:
                    await self.stop()
                    return
                cache: RegistryCache | None = getattr(self, "cache", None)
                if cache is not None:
                    await cache.close()
                if self.pool is not None:
                    await self.pool.close()
        except Exception as exc:   # start-up already failed: that is the error to report, not this one
            log.debug("clean-up after a failed start was incomplete", error=type(exc).__name__)
            if self.pool is not None:
                self.pool.terminate()
