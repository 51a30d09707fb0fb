"""ChirpStack v4 MQTT integration source, acknowledging each message only when it is done.

Each QoS 1 message is acknowledged (PUBACK) when its finalizer fires: delivered to every consumer or
durably spilled; only then. A persistent session (``clean_start=False``, a session expiry, a stable
client id) makes the broker send again whatever was unacknowledged at a crash or a lost connection.

The source never stops reading its socket to bound intake (that also stopped PINGRESPs, and the client
dropped its own healthy connection after two keepalives). It announces ``max_in_flight`` as its MQTT v5
Receive Maximum and holds back, unstarted, any PUBLISH beyond that many in progress, starting it when one
finishes (``intake_gate``). Only when a broker ignores the Receive Maximum (Mosquitto before 2.0.13) and
the hold itself is full does it stop reading, keeping the link alive with TCP_USER_TIMEOUT and its own
PINGREQs until the hold has drained to half.

A PUBACK goes out only on the connection that delivered the message: after a reconnect the broker sends
unacknowledged messages again under their old packet ids, and an id may already name another message,
so a late ack on the new connection could acknowledge a message that is not done.

``connected`` (and ``iotd_broker_connected``) is true only while the broker has accepted the current
connection, its socket is open and the broker has been heard from within 1.5 keepalives (the MQTT
server's own rule); a watchdog pings a quiet link and closes a silent one, so a lost link is reported
and reconnected within 1.5 keepalives even when no packet says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import structlog
from gmqtt import Client
from gmqtt.mqtt.constants import MQTTv50

from distributor.ack import Finalizer
from distributor.metrics import Metrics
from distributor.mqtt_cork import cork
from distributor.pipeline import Pipeline
from distributor.settings import Settings
from distributor.sources import gmqtt_link as link
from distributor.sources.chirpstack import submit
from distributor.sources.chirpstack_event import EventParseError
from distributor.sources.chirpstack_parse import parse, parse_topic
from distributor.sources.intake_gate import IntakeGate
from registry.consumer_url import mask_url

log = structlog.get_logger("iotd.source.chirpstack")
SOURCE = "chirpstack-mqtt"
EVENT_TOPIC = "application/+/device/+/event/+"
WEEK_S = 7 * 24 * 3600
SHARED_SESSION_EXPIRY_S = 3600   # a share-group member: see session_expiry_for
STALE_KEEPALIVES = 1.5           # silence after which the link counts as lost (the MQTT server's rule)
PAUSE_LOG_INTERVAL_S = 60.0


def broker_address(url: str) -> tuple[str, int, bool, str | None, str | None]:
    """(host, port, tls, username, password) from ``mqtt://user:pass@host:port`` or ``mqtts://``."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError(f"MQTT URL must start with mqtt:// or mqtts://, got {mask_url(url)!r}")
    tls = parts.scheme in ("mqtts", "ssl")
    return parts.hostname or "127.0.0.1", parts.port or (8883 if tls else 1883), tls, parts.username, parts.password


def session_expiry_for(settings: Settings) -> int:
    """The session expiry to ask for: the setting, or a week alone and an hour as a share-group member.

    A week lets a lone instance (or one machine's processes, restarted within a second) be down a long
    time without losing what the broker keeps for it. A share-group member that dies keeps receiving its
    share on Mosquitto until it returns or its session expires (deploy/README.md, "Shared
    subscriptions"): an hour bounds that wait, at the price that a member away longer loses what its
    session held on Mosquitto (EMQX hands it to the others at expiry).
    """
    if settings.mqtt_session_expiry_s is not None:
        return settings.mqtt_session_expiry_s
    return SHARED_SESSION_EXPIRY_S if settings.mqtt_share_group else WEEK_S


@dataclass(slots=True)
class Inbound:
    """A PUBLISH from the broker, as received: acked (when QoS 1) on ``connection`` once done."""

    mid: int | None
    topic: str
    payload: bytes
    connection: Any
    received_at: float


class ChirpStackMqttSource:
    def __init__(self, url: str, client_id: str, pipeline: Pipeline, metrics: Metrics, *,
                 share_group: str | None = None, max_in_flight: int = 2000, session_expiry_s: int = WEEK_S,
                 keepalive_s: float = 60, topic: str = EVENT_TOPIC) -> None:
        self._url = url
        self._pipeline = pipeline
        self._metrics = metrics
        self._topic = f"$share/{share_group}/{topic}" if share_group else topic
        self._keepalive = keepalive_s
        self._gate: IntakeGate[Inbound] = IntakeGate(max_in_flight, hold_limit=max_in_flight)
        self._live: Any = None                          # the connection the broker accepted, while it lasts
        self._paused: asyncio.Transport | None = None   # a socket we stopped reading
        self._pause_episodes = 0
        self._pause_logged_at = -PAUSE_LOG_INTERVAL_S
        self._pump_scheduled = False
        self._stopping = False
        self._connects = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._accepted = asyncio.Event()
        self._watchdog: asyncio.Task[None] | None = None
        self.client = Client(client_id, clean_session=False, optimistic_acknowledgement=False,
                             session_expiry_interval=session_expiry_s, receive_maximum=min(65535, max_in_flight))
        link.hook_publishes(self.client, self._arrive)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.reconnect_delay = 1
        self._received_up = metrics.received.labels(SOURCE, "up")
        self._malformed = metrics.malformed.labels(SOURCE)
        self._unacked = metrics.in_flight
        metrics.broker_connected.set_function(lambda: 1.0 if self.connected else 0.0)

    @classmethod
    def from_settings(cls, settings: Settings, pipeline: Pipeline, metrics: Metrics) -> ChirpStackMqttSource:
        if not settings.mqtt_url:
            raise ValueError("IOTD_MQTT_URL is not set")
        return cls(settings.mqtt_url, settings.mqtt_client_id, pipeline, metrics,
                   share_group=settings.mqtt_share_group, max_in_flight=settings.mqtt_max_in_flight,
                   session_expiry_s=session_expiry_for(settings), keepalive_s=settings.mqtt_keepalive_s)

    # --- state -------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        conn = self._live
        if conn is None or conn is not link.current_connection(self.client) or not link.is_open(conn):
            return False
        return self._reading_stopped() or link.data_age(conn) < STALE_KEEPALIVES * self._keepalive

    @property
    def in_flight(self) -> int:
        """Messages started and not yet done."""
        return self._gate.in_progress

    @property
    def held(self) -> int:
        """Messages received beyond ``max_in_flight``, waiting to start (not acknowledged)."""
        return len(self._gate.held)

    # --- connection --------------------------------------------------------------------------
    async def start(self, timeout: float = 10.0) -> None:
        host, port, tls, user, password = broker_address(self._url)
        if user:
            self.client.set_auth_credentials(user, password)
        await asyncio.wait_for(self.client.connect(host, port, ssl=tls, keepalive=int(self._keepalive),
                                                   version=MQTTv50), timeout)
        await asyncio.wait_for(self._accepted.wait(), timeout)
        self._watchdog = asyncio.get_running_loop().create_task(self._watch(), name="mqtt-source-watchdog")

    def _on_connect(self, client: Client, flags: Any, rc: Any, properties: Any) -> None:
        conn = link.current_connection(client)
        cork(client)   # PUBACKs of one loop turn go out in one write
        transport = link.transport_of(conn)
        if transport is not None:
            link.set_user_timeout(transport, STALE_KEEPALIVES * self._keepalive)
        client.subscribe(self._topic, qos=1)
        self._live = conn
        self._paused = None
        self._connects += 1
        self._accepted.set()
        if self._connects > 1 and not flags:
            log.warning("the broker had no session for us: messages it kept for this client id are gone "
                        "(session expired or the broker lost its state)", topic=self._topic)
        log.info("connected to the ChirpStack broker", topic=self._topic, session_present=bool(flags))

    def _on_disconnect(self, client: Client, packet: Any, exc: Any = None) -> None:
        self._live = None
        self._paused = None
        self._accepted.clear()
        dropped = self._gate.forget(lambda item: item.mid is None)   # QoS 1: the broker sends them again
        if dropped:
            self._unacked.dec(dropped)
        if not self._stopping:
            log.warning("disconnected from the ChirpStack broker; reconnecting", in_progress=self._gate.in_progress,
                        held_dropped=dropped)

    async def _watch(self) -> None:
        """Ping a quiet link; close one the broker has been silent on for 1.5 keepalives."""
        while True:
            await asyncio.sleep(self._keepalive / 4)
            conn = self._live
            if conn is None or not link.is_open(conn):
                continue
            if self._reading_stopped():
                link.excuse_silence(conn)   # our pause, not the broker's: TCP_USER_TIMEOUT watches the link
                continue
            age = link.data_age(conn)
            if age >= STALE_KEEPALIVES * self._keepalive:
                log.warning("nothing from the broker within 1.5 keepalives: the link is lost; reconnecting",
                            silent_s=round(age, 1), keepalive_s=self._keepalive)
                self._live = None
                transport = link.transport_of(conn)
                if transport is not None:
                    transport.abort()   # gmqtt sees the loss at once and reconnects
            elif age >= self._keepalive / 2:
                link.ping(conn)

    # --- intake ------------------------------------------------------------------------------
    def _arrive(self, mid: int | None, topic: str, payload: bytes, qos: int, connection: Any) -> None:
        if self._stopping:
            return   # neither started nor acknowledged: the broker sends it again to the next session
        item = Inbound(mid, topic, payload, connection, time.time())
        self._unacked.inc()
        if self._gate.arrive(item):
            self._idle.clear()
            self._start(item)
        elif self._gate.full:
            self._stop_reading(connection)

    def _start(self, item: Inbound) -> None:
        finalizer = Finalizer(partial(self._done, item))
        try:
            self._submit(item, finalizer)
        except Exception:
            log.exception("a message could not be handed to the pipeline; left unacknowledged",
                          topic=item.topic[:200])
            if not finalizer.fired:
                finalizer.release(False)

    def _submit(self, item: Inbound, finalizer: Finalizer) -> None:
        parsed_topic = parse_topic(item.topic) if isinstance(item.topic, str) else None   # gmqtt: bytes if not UTF-8
        if parsed_topic is None:
            self._malformed.inc()
            log.warning("message on an unexpected topic ignored", topic=str(item.topic)[:200])
            finalizer.release(True)   # it will never parse: acknowledged, not sent again
            return
        _, _, event = parsed_topic
        try:
            ev = parse(event, item.payload)
        except EventParseError as exc:
            self._malformed.inc()
            log.warning("malformed ChirpStack event", topic=item.topic[:200], error=str(exc), size=len(item.payload))
            finalizer.release(True)
            return
        if event == "up":
            self._received_up.inc()
        else:
            self._metrics.received.labels(SOURCE, event).inc()
        submit(self._pipeline, ev, finalizer, SOURCE, item.received_at)

    def _done(self, item: Inbound, ok: bool) -> None:
        self._gate.finish()
        self._unacked.dec()
        if item.mid is not None:
            if not ok:
                log.error("message not done; left unacknowledged, so the broker sends it again after a reconnect",
                          topic=item.topic[:200])
            elif item.connection is self._live and link.is_open(item.connection):
                link.send_puback(item.connection, item.mid)
            else:
                log.debug("done after its connection was lost; the broker sends it again", mid=item.mid)
        if self._gate.held:
            self._schedule_pump()
        elif self._gate.idle:
            self._idle.set()

    def _schedule_pump(self) -> None:
        if not self._pump_scheduled:   # next loop turn: never re-enter the pipeline from a finalizer
            self._pump_scheduled = True
            asyncio.get_running_loop().call_soon(self._pump)

    def _pump(self) -> None:
        self._pump_scheduled = False
        if self._stopping:
            return
        while (item := self._gate.next()) is not None:
            self._start(item)
        if self._paused is not None and self._gate.drained:
            transport, self._paused = self._paused, None
            if not transport.is_closing():
                transport.resume_reading()

    def _stop_reading(self, connection: Any) -> None:
        """The fallback: the broker sent beyond our Receive Maximum and the hold is full."""
        transport = link.transport_of(connection)
        if transport is None or transport.is_closing() or not transport.is_reading():
            return
        transport.pause_reading()
        self._paused = transport
        link.excuse_silence(connection)
        self._pause_episodes += 1
        now = time.monotonic()
        if now - self._pause_logged_at >= PAUSE_LOG_INTERVAL_S:
            self._pause_logged_at = now
            log.warning("the broker sent more than our Receive Maximum; reading paused until held messages start "
                        "(a broker that honours it never does this, e.g. Mosquitto >= 2.0.13)",
                        held=len(self._gate.held), in_progress=self._gate.in_progress, episodes=self._pause_episodes)

    def _reading_stopped(self) -> bool:
        return self._paused is not None and not self._paused.is_closing() and not self._paused.is_reading()

    # --- shutdown ----------------------------------------------------------------------------
    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Stop reading, let in-flight messages finish (and be acked), then disconnect."""
        self._stopping = True
        conn = self._live
        transport = link.transport_of(conn) if conn is not None else None
        if transport is not None and not transport.is_closing() and transport.is_reading():
            transport.pause_reading()
            self._paused = transport
            link.excuse_silence(conn)
        dropped = self._gate.forget(lambda item: False)   # never started, never acked: sent again next time
        if dropped:
            self._unacked.dec(dropped)
        if self._gate.idle:
            self._idle.set()
        try:
            await asyncio.wait_for(self._idle.wait(), drain_timeout)
        except TimeoutError:
            log.warning("in-flight messages not done at shutdown; the broker will redeliver them",
                        in_flight=self._gate.in_progress)
        await asyncio.sleep(0)  # let the last PUBACKs be written
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        try:
            await asyncio.wait_for(self.client.disconnect(), 5)
        except (TimeoutError, OSError) as exc:
            log.warning("disconnect from the broker was not clean", error=str(exc))
