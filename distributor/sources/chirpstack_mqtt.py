"""ChirpStack v4 MQTT integration source, acknowledging each message only when it is done.

gmqtt with ``optimistic_acknowledgement=False`` (MQTT v5) sends the PUBACK when our async
handler returns, and the handler returns only when the message's finalizer fires: delivered
to every consumer or durably spilled. A persistent session (``clean_start=False``, a session
expiry, a stable client id) makes the broker redeliver whatever was unacked at a crash.

The broker's receive window does not bound intake (REFERENCE.md), so the source bounds it
itself: at ``max_in_flight`` unfinished messages it pauses reading the socket, and resumes
at half. gmqtt has no public API for that; we pause its asyncio transport.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlsplit

import structlog
from gmqtt import Client
from gmqtt.mqtt.constants import MQTTv50

from distributor.ack import finalizer_for
from distributor.metrics import Metrics
from distributor.mqtt_cork import cork
from distributor.pipeline import Pipeline
from distributor.sources.chirpstack import submit
from distributor.sources.chirpstack_event import EventParseError
from distributor.sources.chirpstack_parse import parse, parse_topic
from registry.consumer_url import mask_url

log = structlog.get_logger("iotd.source.chirpstack")
SOURCE = "chirpstack-mqtt"
EVENT_TOPIC = "application/+/device/+/event/+"


def broker_address(url: str) -> tuple[str, int, bool, str | None, str | None]:
    """(host, port, tls, username, password) from ``mqtt://user:pass@host:port`` or ``mqtts://``."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError(f"MQTT URL must start with mqtt:// or mqtts://, got {mask_url(url)!r}")
    tls = parts.scheme in ("mqtts", "ssl")
    return parts.hostname or "127.0.0.1", parts.port or (8883 if tls else 1883), tls, parts.username, parts.password


class ChirpStackMqttSource:
    def __init__(self, url: str, client_id: str, pipeline: Pipeline, metrics: Metrics, *,
                 share_group: str | None = None, max_in_flight: int = 2000, session_expiry_s: int = 7 * 24 * 3600,
                 topic: str = EVENT_TOPIC) -> None:
        self._url = url
        self._pipeline = pipeline
        self._metrics = metrics
        self._topic = f"$share/{share_group}/{topic}" if share_group else topic
        self._max_in_flight = max_in_flight
        self._in_flight = 0
        self._paused = False
        self._stopping = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._connected = asyncio.Event()
        self.client = Client(client_id, clean_session=False, optimistic_acknowledgement=False,
                             session_expiry_interval=session_expiry_s, receive_maximum=min(65535, max_in_flight))
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.reconnect_delay = 1
        self._received_up = metrics.received.labels(SOURCE, "up")
        self._malformed = metrics.malformed.labels(SOURCE)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def start(self, timeout: float = 10.0) -> None:
        host, port, tls, user, password = broker_address(self._url)
        if user:
            self.client.set_auth_credentials(user, password)
        await asyncio.wait_for(self.client.connect(host, port, ssl=tls, version=MQTTv50), timeout)
        await asyncio.wait_for(self._connected.wait(), timeout)

    def _on_connect(self, client: Client, flags: Any, rc: Any, properties: Any) -> None:
        cork(client)   # PUBACKs of one loop turn go out in one write
        client.subscribe(self._topic, qos=1)
        self._connected.set()
        self._metrics.broker_connected.set(1)
        self._paused = False
        log.info("connected to the ChirpStack broker", topic=self._topic)

    def _on_disconnect(self, client: Client, packet: Any, exc: Any = None) -> None:
        self._connected.clear()
        self._metrics.broker_connected.set(0)
        if not self._stopping:
            log.warning("disconnected from the ChirpStack broker; reconnecting")

    def _transport(self) -> asyncio.Transport | None:
        conn = getattr(self.client, "_connection", None)
        return getattr(conn, "_transport", None)

    def _enter(self) -> None:
        self._in_flight += 1
        self._idle.clear()
        self._metrics.in_flight.inc()
        if self._in_flight >= self._max_in_flight and not self._paused:
            transport = self._transport()
            if transport is not None and not transport.is_closing():
                transport.pause_reading()
                self._paused = True

    def _leave(self) -> None:
        self._in_flight -= 1
        self._metrics.in_flight.dec()
        if self._paused and self._in_flight <= self._max_in_flight // 2 and not self._stopping:
            transport = self._transport()
            if transport is not None and not transport.is_closing():
                transport.resume_reading()
            self._paused = False
        if self._in_flight == 0:
            self._idle.set()

    async def _on_message(self, client: Client, topic: str, payload: bytes, qos: int, properties: Any) -> int:
        received_at = time.time()
        self._enter()
        try:
            parsed_topic = parse_topic(topic)
            if parsed_topic is None:
                self._malformed.inc()
                log.warning("message on an unexpected topic ignored", topic=topic)
                return 0
            _, _, event = parsed_topic
            try:
                ev = parse(event, payload)
            except EventParseError as exc:
                self._malformed.inc()
                log.warning("malformed ChirpStack event", topic=topic, error=str(exc), size=len(payload))
                return 0
            if event == "up":
                self._received_up.inc()
            else:
                self._metrics.received.labels(SOURCE, event).inc()
            done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            submit(self._pipeline, ev, finalizer_for(done), SOURCE, received_at)
            await done
            return 0
        finally:
            self._leave()

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Stop reading, let in-flight messages finish (and be acked), then disconnect."""
        self._stopping = True
        transport = self._transport()
        if transport is not None and not transport.is_closing():
            transport.pause_reading()
        try:
            await asyncio.wait_for(self._idle.wait(), drain_timeout)
        except TimeoutError:
            log.warning("in-flight messages not done at shutdown; the broker will redeliver them",
                        in_flight=self._in_flight)
        await asyncio.sleep(0)  # let the last PUBACKs be written
        try:
            await asyncio.wait_for(self.client.disconnect(), 5)
        except (TimeoutError, OSError) as exc:
            log.warning("disconnect from the broker was not clean", error=str(exc))
