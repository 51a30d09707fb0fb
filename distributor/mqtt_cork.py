"""Coalesce gmqtt's socket writes: one ``transport.write`` per event-loop turn instead of one per packet.

Under load every message costs two small writes (our PUBACK to ChirpStack's broker, our PUBLISH to
a consumer's broker), each a system call. Buffering them until the end of the current loop turn
sends the same bytes in the same order with one call. gmqtt offers no hook for this, so its
protocol object's ``write_data`` is wrapped after each (re)connect; a connection that is gone
drops its buffer exactly as its socket would have. A DISCONNECT is written at once, with
what is buffered before it, because gmqtt closes the socket in the same turn.
"""

from __future__ import annotations

import asyncio
from typing import Any

_MARK = "_iotd_corked"
DISCONNECT = 14   # MQTT control packet type


def cork(client: Any) -> bool:
    """Wrap the client's current connection; returns False when there is none (not connected)."""
    protocol = getattr(getattr(client, "_connection", None), "_protocol", None)
    if protocol is None or getattr(protocol, _MARK, False):
        return protocol is not None
    write = protocol.write_data
    loop = asyncio.get_running_loop()
    pending: list[bytes] = []

    def flush() -> None:
        if not pending:
            return
        data = b"".join(pending)
        pending.clear()
        write(data)

    def corked_write(data: bytes) -> None:
        if data[:1] and data[0] >> 4 == DISCONNECT:   # gmqtt closes the socket right after: write it all now
            pending.append(data)
            flush()
            return
        if not pending:
            loop.call_soon(flush)
        pending.append(data)

    protocol.write_data = corked_write
    setattr(protocol, _MARK, True)
    return True
