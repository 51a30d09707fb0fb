"""Write coalescing for gmqtt connections: same bytes, same order, one write per loop turn, and a
DISCONNECT written at once. The protocol here is a recorder standing in for gmqtt's (the real one is
exercised by the MQTT source and sink tests against Mosquitto)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from distributor.mqtt_cork import cork


class Recorder:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write_data(self, data: bytes) -> None:
        self.writes.append(data)


async def test_writes_of_one_turn_become_one_and_keep_their_order() -> None:
    protocol = Recorder()
    client = SimpleNamespace(_connection=SimpleNamespace(_protocol=protocol))
    assert cork(client) and cork(client)            # wrapping twice is harmless
    for packet in (b"\x40\x02\x00\x01", b"\x40\x02\x00\x02", b"\x30\x05hello"):
        protocol.write_data(packet)
    assert protocol.writes == []
    await asyncio.sleep(0)
    assert protocol.writes == [b"\x40\x02\x00\x01\x40\x02\x00\x02\x30\x05hello"]
    protocol.write_data(b"\x40\x02\x00\x03")
    protocol.write_data(b"\xe0\x00")                 # DISCONNECT: gmqtt closes the socket right after
    assert protocol.writes[-1] == b"\x40\x02\x00\x03\xe0\x00"
    await asyncio.sleep(0)
    assert len(protocol.writes) == 2


def test_no_connection_means_nothing_to_wrap() -> None:
    assert cork(SimpleNamespace(_connection=None)) is False
