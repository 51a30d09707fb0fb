"""Reusable pieces for end-to-end scenarios: provisioning, publishing, and the service as a real process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt

from distributor.demo_feed import to_json, uplink_event
from distributor.envelope import message_id
from distributor.settings import Settings
from distributor.sources.chirpstack import message_key
from distributor.sources.chirpstack_parse import parse
from registry import store
from registry.db import create_pool, migrate
from registry.installation import open_secret_box
from tests.support.broker import MosquittoBroker, free_port

SECRET_KEY = "scenario-secret-key-0123456789"
LOOPBACK = "127.0.0.0/8,::1/128"   # IOTD_CONSUMER_ALLOWED_NETWORKS for tests: their consumers listen on loopback
EUI = "a81758fffe0312ab"
FRAME = bytes.fromhex("0101170231" "04008b" "0508" "070e3d")
FAST_RETRIES: dict[str, Any] = {"retry_poll_s": 0.05, "retry_base_s": 0.05, "retry_max_backoff_s": 0.3,
                                "circuit_threshold": 3, "circuit_cooldown_s": 0.2, "drain_timeout_s": 3}


@dataclass
class Tenant:
    organization: str
    application: str
    device: str
    consumers: dict[str, str]


async def provision(database_url: str, consumers: dict[str, dict[str, Any]],
                    dev_euis: tuple[str, ...] = (EUI,)) -> Tenant:
    """One organization and application, an Elsys device per DevEUI (``Tenant.device`` is the first), and the
    named consumers subscribed to the application."""
    pool = await create_pool(database_url)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            box = await open_secret_box(conn, SECRET_KEY)
            org = await store.create_organization(conn, f"org-{uuid.uuid4().hex[:6]}")
            app = await store.create_application(conn, org, "app")
            devices = [(await store.create_device(conn, box, application_id=app, name="d" if i == 0 else f"d{i}",
                                                  dev_eui=eui, decoder="elsys"))[0] for i, eui in enumerate(dev_euis)]
            ids = {}
            for name, spec in consumers.items():
                ids[name] = await store.create_consumer(conn, box, organization_id=org, name=name, **spec)
                await store.create_subscription(conn, consumer_id=ids[name], application_id=app)
        return Tenant(org, app, devices[0], ids)
    finally:
        await pool.close()


def settings(database_url: str, broker: MosquittoBroker, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"database_url": database_url, "mqtt_url": broker.url, "http_port": 0,
                              "http_host": "127.0.0.1", "secret_key": SECRET_KEY, "consumer_allowed_networks": LOOPBACK,
                              "mqtt_client_id": f"iotd-{uuid.uuid4().hex[:8]}", **overrides}
    return Settings(**values)


def uplinks(n: int, first_f_cnt: int = 1) -> list[tuple[str, bytes]]:
    """n ChirpStack JSON uplinks for the scenario device, with the message id each must become."""
    out = []
    for i in range(n):
        body = to_json(uplink_event(dev_eui=EUI, data=FRAME, f_cnt=first_f_cnt + i))
        out.append((uplink_id(body), body))
    return out


def uplink_id(body: bytes) -> str:
    """The message id iotd gives a ChirpStack JSON uplink (derived from its frame and time)."""
    return message_id(message_key(parse("up", body)))


async def publish_all(port: int, bodies: list[bytes], per_second: float | None = None, window: int = 1) -> None:
    """Publish at QoS 1 like ChirpStack; ``window`` publishes wait for their PUBACKs together."""
    topic = f"application/a/device/{EUI}/event/up"
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"pub-{uuid.uuid4().hex[:6]}",
                              max_inflight_messages=max(20, window)) as client:
        for i in range(0, len(bodies), window):
            await asyncio.gather(*(client.publish(topic, b, qos=1) for b in bodies[i:i + window]))
            if per_second and (i // window) % 10 == 9:
                await asyncio.sleep(10 * window / per_second)


async def until_ready(port: int, timeout: float = 20, alive: Callable[[], None] = lambda: None) -> None:
    """Until ``GET /readyz`` on ``port`` answers 200; ``alive`` raises when the service died meanwhile."""
    async with asyncio.timeout(timeout):
        while True:
            alive()
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET /readyz HTTP/1.0\r\n\r\n")
                status = await reader.readline()
                writer.close()
                if b" 200 " in status:
                    return
            except OSError:
                pass
            await asyncio.sleep(0.1)


class ServiceProcess:
    """`iotd serve` as a child process, so a test can SIGKILL or SIGTERM it.

    Consumers may reach loopback (``LOOPBACK``) unless the settings name other allowed networks.
    """

    def __init__(self, s: Settings, args: tuple[str, ...] = ()) -> None:
        self.args = args
        self.port = free_port()
        self.env = {**os.environ, "IOTD_LOG_LEVEL": "warning"}
        for key, value in s.model_dump().items():
            if value is not None:
                self.env[f"IOTD_{key.upper()}"] = str(value)
        self.env["IOTD_CONSUMER_ALLOWED_NETWORKS"] = s.consumer_allowed_networks or LOOPBACK
        self.env["IOTD_HTTP_PORT"] = str(self.port)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = Path(tempfile.mkdtemp(prefix="iotd-proc-")) / "stderr.log"

    def start(self) -> None:
        with self.log.open("ab") as err:  # a file, not a pipe: a chatty child must never block on it
            self.proc = subprocess.Popen([sys.executable, "-m", "distributor.cli", "serve", *self.args], env=self.env,
                                         stdout=subprocess.DEVNULL, stderr=err)

    async def ready(self, timeout: float = 20) -> None:
        def alive() -> None:
            assert self.proc is not None and self.proc.poll() is None, self.stderr()

        await until_ready(self.port, timeout, alive)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait(self, timeout: float = 30) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(asyncio.to_thread(self.proc.wait), timeout)

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
