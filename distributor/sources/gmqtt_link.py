"""What the ChirpStack source reaches into gmqtt for, in one place (gmqtt 0.8 has no public API for it).

* ``hook_publishes``: incoming PUBLISH packets reach us as plain calls, QoS 1 ones with their packet id,
  instead of gmqtt's task per message that acks when the task returns: the source decides when (and on
  which connection) to send the PUBACK, and may hold a packet back without a task waiting for it.
* ``send_puback``: the acknowledgement, written on the connection that delivered the message.
* ``current_connection``, ``transport_of``, ``data_age``, ``ping``: the live link, its socket, the
  seconds since the broker last sent anything, and a PINGREQ.
* ``set_user_timeout``: TCP_USER_TIMEOUT, so a link whose peer stopped acknowledging our bytes fails
  even while we are not reading from it.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any

from gmqtt import Client
from gmqtt.mqtt.constants import MQTTCommands

# (packet id or None for QoS 0, topic, payload, QoS, the connection it came on)
PublishHook = Callable[[int | None, str, bytes, int, Any], None]


def hook_publishes(client: Client, hook: PublishHook) -> None:
    handler = client._package_handler

    def qos1(mid: int, payload: bytes, topic: str, properties: Any) -> None:
        hook(mid, topic, payload, 1, handler.current_connection)

    def qos0(topic: str, payload: bytes, qos: int, properties: Any) -> None:
        hook(None, topic, payload, 0, handler.current_connection)

    handler._handle_qos_1_publish_packet = qos1
    handler.on_message = qos0   # a plain function: gmqtt calls it directly, without a task


def current_connection(client: Client) -> Any:
    return client._package_handler.current_connection


def send_puback(connection: Any, mid: int) -> None:
    connection.send_command_with_mid(MQTTCommands.PUBACK, mid, False, reason_code=0)


def transport_of(connection: Any) -> asyncio.Transport | None:
    return getattr(connection, "_transport", None)


def is_open(connection: Any) -> bool:
    transport = transport_of(connection)
    return transport is not None and not transport.is_closing()


def data_age(connection: Any) -> float:
    """Seconds since the last packet from the broker (gmqtt stamps each one it reads)."""
    return time.monotonic() - float(connection._last_data_in)


def excuse_silence(connection: Any) -> None:
    """We stopped reading on purpose: the broker's silence is ours, not a lost link (gmqtt would drop it)."""
    connection._last_data_in = time.monotonic()


def ping(connection: Any) -> None:
    connection._send_ping_request()


def set_user_timeout(transport: asyncio.Transport, seconds: float) -> bool:
    """Fail the socket when what we send stays unacknowledged this long (Linux); False where unsupported."""
    option = getattr(socket, "TCP_USER_TIMEOUT", None)
    sock = transport.get_extra_info("socket")
    if option is None or sock is None:
        return False
    try:
        sock.setsockopt(socket.IPPROTO_TCP, option, max(1, int(seconds * 1000)))
    except OSError:
        return False
    return True
