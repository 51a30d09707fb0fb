"""MQTT sink: publish each message to ``mqtt[s]://[user:pass@]host:port/<topic template>``.

Placeholders ``{organization} {application} {device} {dev_eui} {decoder}`` come from
``Outgoing.topic_vars`` ("unknown" if missing); ``/ + #`` in values become ``_``. Each PUBLISH
carries its message id as the v5 user property ``iotd-message-id``, for receivers to de-duplicate, and a
message re-delivered by a replay job (``distributor.replay``) also ``iotd-replay: <job id>``.

QoS 1: gmqtt's ``publish`` returns nothing and shows a PUBACK only by removing the packet from its
in-flight store, so we give it our own store (``_AckBook``): ``publish`` calls its ``push_message``
synchronously (that is the packet id) and the removal settles the batch waiting for it. gmqtt
ignores v5 PUBACK reason codes; ``_Client`` reads them, so a refusal (0x87) is not a delivery.
gmqtt raises ``OverflowError`` when ids run out, and takes the id space from the broker's Receive
Maximum (Mosquitto ``max_inflight_messages``, 20 by default): ``_Window`` allows min(1000, Receive
Maximum - 1) unacked publishes, resized on each CONNACK, and frees a slot only with the id.

One MQTT v5 connection; gmqtt reconnects (unlimited, ``RECONNECT_DELAY_S`` apart), a failed first
connect is retried in the background, and while disconnected ``send`` fails fast (retryable) with
the reason class of the last failed connect ("target address not allowed", "DNS lookup failed",
"connection refused", ...: ``distributor.sinks.guard.failure_class``) or "broker not connected".
No persistent session: what was unacked at a disconnect fails and the lane retries it.

Every connect, the first and each of gmqtt's reconnects, resolves the broker's name, keeps the first
address ``registry.targets`` allows and connects to exactly that address (``_Client._create_connection``);
with ``mqtts://`` the certificate is still verified for the name (``guard.named_tls_context``).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import structlog
from gmqtt import Client
from gmqtt.mqtt.constants import UNLIMITED_RECONNECTS, MQTTv50
from gmqtt.storage import PersistentStorage

from distributor.mqtt_cork import cork
from distributor.sinks.base import REPLAY, DeliveryError, Outgoing
from distributor.sinks.guard import checked_address, failure_class, named_tls_context
from registry.records import Consumer
from registry.targets import TargetPolicy

log = structlog.get_logger("iotd.sinks.mqtt")

MAX_IN_FLIGHT = 1000
RECONNECT_DELAY_S = 2
_LOST = -1                                   # settle code: this packet will never be acked
_PERMANENT = {0x87, 0x90, 0x99}              # not authorized, topic name invalid, payload format invalid
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_UNSAFE = str.maketrans({"/": "_", "+": "_", "#": "_", "\x00": "_"})


def compile_template(template: str) -> list[str]:
    """Literal text and placeholder names, alternating; wildcards in the literal text are refused."""
    if not template or "+" in template or "#" in template:
        raise ValueError(f"invalid MQTT topic template {template!r}")
    return _PLACEHOLDER.split(template)


def render_topic(parts: list[str], values: dict[str, str]) -> str:
    return "".join(p if i % 2 == 0 else (values.get(p) or "unknown").translate(_UNSAFE) for i, p in enumerate(parts))


class _Batch:
    """One ``send`` waiting for its acks: resolves to 0 once all are acked, else to the failing code."""

    __slots__ = ("done", "left")

    def __init__(self, n: int) -> None:
        self.left = n
        self.done: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def settle(self, code: int) -> None:
        if not self.done.done():
            self.left -= 1
            if code < 0 or code >= 0x80 or self.left == 0:
                self.done.set_result(0 if 0 <= code < 0x80 else code)


class _Window:
    """A semaphore whose size can change (the broker's Receive Maximum) and that fails its waiters."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        while self.used >= self.limit:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if not waiter.cancelled():
                    self._wake()  # woken, but this task won't take the slot: pass it on
                raise
        self.used += 1

    def release(self) -> None:
        self.used -= 1
        self._wake()

    def resize(self, limit: int) -> None:
        self.limit = limit
        self._wake()

    def fail(self, detail: str) -> None:
        self._wake(detail)

    def _wake(self, error: str | None = None) -> None:
        free = self.limit - self.used
        while self._waiters and (free > 0 or error):
            waiter = self._waiters.popleft()
            if waiter.done():  # cancelled
                continue
            if error:
                waiter.set_exception(DeliveryError(error))
            else:
                waiter.set_result(None)
                free -= 1


class _AckBook(PersistentStorage):  # type: ignore[misc]
    """gmqtt's in-flight store that also maps each packet id to the batch waiting for its PUBACK."""

    def __init__(self, window: _Window) -> None:
        super().__init__()
        self.window = window
        self.waiting: dict[int, _Batch] = {}
        self.last_mid: int | None = None
        self.reason = 0                      # PUBACK reason code, set just before gmqtt removes the packet
        self.free_id: Callable[[int], None] = lambda mid: None

    def push_message(self, mid: int, raw_package: bytes) -> None:
        super().push_message(mid, raw_package)
        self.last_mid = mid

    def remove_message_by_mid(self, mid: int) -> None:
        super().remove_message_by_mid(mid)
        batch = self.waiting.pop(mid, None)
        if batch is not None:
            self.window.release()
            batch.settle(self.reason)
        self.reason = 0

    def clear(self) -> None:
        """A CONNACK without a session: gmqtt drops unacked packets but leaves their ids taken."""
        super().clear()
        waiting, self.waiting = self.waiting, {}
        for mid, batch in waiting.items():
            self.free_id(mid)
            self.window.release()
            batch.settle(_LOST)


class _Client(Client):  # type: ignore[misc]
    """gmqtt's client plus PUBACK reason codes, and a shutdown that also stops a reconnect under way."""

    def __init__(self, client_id: str, book: _AckBook, policy: TargetPolicy,
                 on_failure: Callable[[str], None] = lambda reason: None) -> None:
        super().__init__(client_id, persistent_storage=book)
        self.book = book
        self._policy = policy
        self._on_failure = on_failure
        self._down = False
        self._reconnecting: asyncio.Task[Any] | None = None
        handler = self._package_handler
        book.free_id = handler.id_generator.free_id
        original = handler._handle_puback_packet

        def on_puback(cmd: int, packet: bytes) -> None:
            book.reason = packet[2] if len(packet) > 2 else 0
            original(cmd, packet)

        handler._handle_puback_packet = on_puback  # looked up on the instance, so this replaces it

    async def _create_connection(self, host: str, port: int, ssl: Any, clean_session: bool, keepalive: int) -> Any:
        """gmqtt's connect and reconnect both come here: dial only an address the policy allows."""
        try:
            address = await checked_address(self._policy, host, port)
            tls = named_tls_context(host) if ssl is True else ssl
            return await super()._create_connection(address, port, tls, clean_session, keepalive)
        except Exception as exc:
            self._on_failure(failure_class(exc))
            raise

    async def reconnect(self, delay: bool = False) -> None:
        if self._down:
            return
        self._reconnecting = asyncio.current_task()
        try:
            await super().reconnect(delay=delay)
        finally:
            self._reconnecting = None

    async def shutdown(self) -> None:
        # gmqtt's disconnect() does not stop a reconnect sleeping out its delay: it would connect again
        self._down = True
        if self._reconnecting is not None and self._reconnecting is not asyncio.current_task():
            self._reconnecting.cancel()
            await asyncio.gather(self._reconnecting, return_exceptions=True)
        with contextlib.suppress(OSError):
            await self.disconnect()


class MqttSink:
    """Publishes to one consumer's broker at the consumer's QoS (0; 1 and 2 both mean QoS 1)."""

    def __init__(self, consumer: Consumer, client_id: str, *, policy: TargetPolicy) -> None:
        url = urlsplit(consumer.target_url)
        if url.scheme not in ("mqtt", "mqtts") or not url.hostname:
            raise ValueError(f"consumer {consumer.id}: not an mqtt:// or mqtts:// URL")
        self._consumer, self._client_id, self._policy = consumer, client_id, policy
        self._down_reason = "broker not connected"   # what a send says while there is no connection
        self._host, self._ssl = url.hostname, url.scheme == "mqtts"
        self._port = url.port or (8883 if self._ssl else 1883)
        self._user = unquote(url.username) if url.username else None
        self._password = unquote(url.password) if url.password else None
        self._parts = compile_template(unquote(url.path.lstrip("/")))
        self._qos = 0 if consumer.qos <= 0 else 1
        self._timeout = consumer.timeout_s
        self._window = _Window(MAX_IN_FLIGHT)
        self._client: _Client | None = None
        self._lost: asyncio.Future[None] | None = None      # resolves when the current connection drops
        self._retry: asyncio.Task[None] | None = None

    def topic(self, message: Outgoing) -> str:
        return render_topic(self._parts, message.topic_vars)

    async def start(self) -> None:
        try:
            await self._connect()
        except Exception as exc:
            log.warning("mqtt consumer unreachable; connecting in the background", consumer=self._consumer.id,
                        error=failure_class(exc), error_type=type(exc).__name__)
            self._retry = asyncio.create_task(self._connect_until_up(), name=f"mqtt-sink-{self._consumer.id}")

    async def _connect(self) -> None:
        book = _AckBook(self._window)
        client = _Client(self._client_id, book, self._policy, self._failed)
        client.on_connect, client.on_disconnect = self._on_connect, self._on_disconnect
        client.set_config({"reconnect_retries": UNLIMITED_RECONNECTS, "reconnect_delay": RECONNECT_DELAY_S})
        if self._user is not None:
            client.set_auth_credentials(self._user, self._password)
        try:
            async with asyncio.timeout(max(self._timeout, 5.0)):
                await client.connect(self._host, self._port, ssl=self._ssl, keepalive=30, version=MQTTv50)
        except BaseException as exc:
            if isinstance(exc, Exception):
                self._failed(failure_class(exc) if isinstance(exc, OSError) else "broker refused the connection")
            await client.shutdown()
            raise
        self._client = client

    def _failed(self, reason: str) -> None:
        self._down_reason = reason

    async def _connect_until_up(self) -> None:
        delay = 1.0
        while True:
            await asyncio.sleep(delay)
            try:
                await self._connect()
            except Exception:
                delay = min(delay * 2, 30.0)
            else:
                log.info("mqtt consumer connected", consumer=self._consumer.id)
                return

    def _on_connect(self, client: Any, flags: int, rc: int, properties: dict[str, Any]) -> None:
        self._down_reason = "broker not connected"
        cork(client)   # PUBLISHes of one loop turn go out in one write
        receive_maximum = (properties.get("receive_maximum") or [65535])[0]
        self._window.resize(max(1, min(MAX_IN_FLIGHT, receive_maximum - 1)))
        if self._lost is None or self._lost.done():
            self._lost = asyncio.get_running_loop().create_future()

    def _on_disconnect(self, client: Any, packet: Any, exc: Any = None) -> None:
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)
        self._window.fail("connection lost")

    async def send(self, batch: list[Outgoing]) -> None:
        client, lost = self._client, self._lost
        if not batch:
            return
        if client is None or lost is None or lost.done() or not client.is_connected:
            raise DeliveryError(self._down_reason)
        book = client.book
        pending = _Batch(len(batch))
        try:
            async with asyncio.timeout(self._timeout):
                for o in batch:
                    replay = o.topic_vars.get(REPLAY)
                    props: dict[str, Any] = {"user_property": (
                        ("iotd-message-id", o.message_id) if not replay
                        else [("iotd-message-id", o.message_id), ("iotd-replay", replay)])}
                    if self._qos == 0:
                        client.publish(self.topic(o), o.body, qos=0, **props)
                        continue
                    await self._window.acquire()
                    if lost.done() or not client.is_connected:
                        self._window.release()
                        raise DeliveryError("connection lost")
                    book.last_mid = None
                    try:
                        client.publish(self.topic(o), o.body, qos=1, **props)
                    except OverflowError:  # the window should make this impossible; never leak the slot
                        self._window.release()
                        raise DeliveryError("MQTT packet ids exhausted") from None
                    assert book.last_mid is not None
                    book.waiting[book.last_mid] = pending
                if self._qos == 1:
                    await asyncio.wait((pending.done, lost), return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            raise DeliveryError("timeout") from None            # no PUBACK within the consumer's timeout
        code = 0 if self._qos == 0 else pending.done.result() if pending.done.done() else _LOST
        if code == _LOST:
            raise DeliveryError("connection lost")              # before the PUBACK
        if code:
            raise DeliveryError(f"broker refused the publish: reason code 0x{code:02x}",
                                retryable=code not in _PERMANENT, status=code)

    async def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            await asyncio.gather(self._retry, return_exceptions=True)
        self._on_disconnect(None, None)
        if self._client is not None:
            await self._client.shutdown()
        self._client = None
