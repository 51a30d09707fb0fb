"""`iotd serve --processes 2`: two distributor processes share the ChirpStack subscription; together
they deliver every message once, and SIGTERM drains both. Real Mosquitto, PostgreSQL, HTTP consumer."""

from __future__ import annotations

import asyncio
import signal

import httpx

from distributor.settings import Settings
from distributor.supervisor import child_env
from tests.support.broker import MosquittoBroker
from tests.support.receivers import webhook
from tests.support.scenario import FAST_RETRIES, ServiceProcess, provision, publish_all, settings, uplinks


def test_each_process_gets_its_own_identity_and_port() -> None:
    s = Settings(mqtt_client_id="iotd-a", http_port=8080)
    first, second = child_env({}, s, 0), child_env({}, s, 1)
    assert (first["IOTD_MQTT_CLIENT_ID"], second["IOTD_MQTT_CLIENT_ID"]) == ("iotd-a-0", "iotd-a-1")
    assert first["IOTD_MQTT_SHARE_GROUP"] == second["IOTD_MQTT_SHARE_GROUP"] == "iotd"
    assert "IOTD_RUN_API" not in first and second["IOTD_RUN_API"] == "false" and second["IOTD_HTTP_PORT"] == "8081"
    assert child_env({}, Settings(mqtt_share_group="city", http_port=0), 3)["IOTD_HTTP_PORT"] == "0"


def test_one_machines_processes_keep_a_week_long_session_unless_told_otherwise() -> None:
    # restarted within a second by the supervisor: a share member's hour would only lose what the broker kept
    assert child_env({}, Settings(), 1)["IOTD_MQTT_SESSION_EXPIRY_S"] == str(7 * 24 * 3600)
    assert "IOTD_MQTT_SESSION_EXPIRY_S" not in child_env({}, Settings(mqtt_share_group="city"), 1)
    assert "IOTD_MQTT_SESSION_EXPIRY_S" not in child_env({}, Settings(mqtt_session_expiry_s=600), 1)


async def metric(port: int, name: str) -> float:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


async def test_two_processes_share_the_stream_and_stop_cleanly(broker: MosquittoBroker, db: str) -> None:
    async with webhook() as (url, got):
        await provision(db, {"hook": {"kind": "http", "url": url}})
        proc = ServiceProcess(settings(db, broker, **FAST_RETRIES), args=("--processes", "2"))
        proc.start()
        try:
            await proc.ready()
            second = ServiceProcess.__new__(ServiceProcess)
            second.port, second.proc, second.log = proc.port + 1, proc.proc, proc.log
            await second.ready()
            messages = uplinks(2000)
            await publish_all(broker.port, [b for _, b in messages], window=50)
            await got.wait_for(lambda b: {x["id"] for x in b} >= {m for m, _ in messages}, timeout=60)
            received = [await metric(p, 'iotd_received_total{event="up"') for p in (proc.port, proc.port + 1)]
            assert sum(received) == 2000 and min(received) > 0, received   # both took a share, none twice
            assert len(got.bodies) == 2000
            proc.kill(signal.SIGTERM)
            assert await proc.wait() == 0, proc.stderr()
        finally:
            proc.stop()
            await asyncio.sleep(0)
