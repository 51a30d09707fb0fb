"""What Mosquitto does with a shared subscription when one member is gone, measured (deploy/README.md,
"Shared subscriptions", and the share-group default of IOTD_MQTT_SESSION_EXPIRY_S rest on it).

Two members of one share group with persistent MQTT v5 sessions, as iotd instances have: Mosquitto's own
``mosquitto_sub`` processes, one killed with SIGKILL. Mosquitto keeps dealing the stream round-robin to
every member, the dead one included: its share waits in its session until it returns, and is dropped
(lost) when the session expires; only then do the others take the whole stream.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import uuid

import pytest

from tests.support.broker import MosquittoBroker

pytestmark = pytest.mark.skipif(shutil.which("mosquitto_sub") is None, reason="needs mosquitto-clients")
SHARED = "$share/iotd/t/#"


class Member:
    """A share-group member with a persistent session, printing each payload it receives to a file."""

    def __init__(self, broker: MosquittoBroker, client_id: str, expiry_s: int) -> None:
        self.broker, self.client_id, self.expiry_s = broker, client_id, expiry_s
        self.out = broker.dir / f"{client_id}.out"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.out.write_bytes(b"")
        with self.out.open("ab") as out:
            self.proc = subprocess.Popen(["mosquitto_sub", "-p", str(self.broker.port), "-V", "mqttv5", "-c",
                                          "-x", str(self.expiry_s), "-i", self.client_id, "-q", "1", "-t", SHARED],
                                         stdout=out, stderr=subprocess.DEVNULL)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()

    def received(self) -> list[str]:
        return self.out.read_text().split()


def publish(broker: MosquittoBroker, first: int, n: int) -> None:
    lines = "".join(f"{i}\n" for i in range(first, first + n)).encode()
    subprocess.run(["mosquitto_pub", "-p", str(broker.port), "-q", "1", "-t", "t/x", "-l"], input=lines, check=True)


async def settle(*members: Member, total: int, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while sum(len(m.received()) for m in members) < total:
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)   # anything more would arrive now


async def subscribed(*members: Member) -> None:
    await asyncio.sleep(0.5)   # mosquitto_sub has no "subscribed" signal; the broker answers in milliseconds


async def test_a_dead_members_share_waits_in_its_session_until_it_returns(own_broker: MosquittoBroker) -> None:
    a, b = (Member(own_broker, f"member-{name}-{uuid.uuid4().hex[:4]}", 600) for name in "ab")
    try:
        a.start()
        b.start()
        await subscribed(a, b)
        a.kill()
        publish(own_broker, 0, 100)
        await settle(b, total=50)
        assert len(b.received()) == 50            # the survivor gets half; the other half went to the dead one
        a.start()                                  # back with the same client id within the expiry
        await settle(a, b, total=100)
        assert sorted(a.received() + b.received(), key=int) == [str(i) for i in range(100)]
    finally:
        a.stop()
        b.stop()


async def test_an_expired_session_drops_its_share_and_then_the_others_take_the_stream(
        own_broker: MosquittoBroker) -> None:
    a = Member(own_broker, f"member-a-{uuid.uuid4().hex[:4]}", 2)
    b = Member(own_broker, f"member-b-{uuid.uuid4().hex[:4]}", 600)
    try:
        a.start()
        b.start()
        await subscribed(a, b)
        a.kill()
        publish(own_broker, 0, 100)
        await settle(b, total=50)
        assert len(b.received()) == 50
        await asyncio.sleep(3.5)                   # the dead member's session expires (Mosquitto checks each second)
        publish(own_broker, 100, 100)
        await settle(b, total=150)
        assert len(b.received()) == 150            # after the expiry the survivor takes the whole stream
        a.start()
        await subscribed(a)
        await asyncio.sleep(1.0)
        assert a.received() == []                  # what the expired session held is gone: 50 lost
    finally:
        a.stop()
        b.stop()
