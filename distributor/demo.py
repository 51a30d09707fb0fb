"""`iotd demo`: the whole path on one machine with a live feed.

Starts (or uses the configured) PostgreSQL and MQTT broker, registers a demo organization,
application, devices and two consumers (an HTTP webhook served here, and an MQTT topic),
publishes realistic ChirpStack uplinks from several device types, and prints each decoded
message as the consumers receive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import secrets
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiomqtt
import orjson
from aiohttp import web

from distributor.demo_feed import (
    DEMO_TENANT_ID,
    cayenne_frame,
    elsys_frame,
    milesight_am307_frame,
    status_event,
    to_json,
    uplink_event,
)
from distributor.embedded import embedded_mosquitto, embedded_postgres, free_port
from distributor.service import Service
from distributor.settings import Settings
from distributor.sources.chirpstack_mqtt import broker_address
from distributor.startup import probe_port
from registry import store
from registry.api.keys import create_first_key
from registry.db import create_pool, migrate
from registry.installation import open_secret_box
from registry.targets import parse_address


@dataclass(frozen=True)
class DemoDevice:
    name: str
    dev_eui: str
    decoder: str
    frame: Callable[[float], bytes]
    f_port: int
    room: str


DEVICES = (
    DemoDevice("classroom-1.12", "a81758fffe0312ab", "elsys", elsys_frame, 5, "1.12"),
    DemoDevice("library", "a81758fffe0312ac", "cayenne-lpp", cayenne_frame, 1, "library"),
    DemoDevice("gym", "24e124707c481005", "milesight-am307", milesight_am307_frame, 85, "gym"),
)
UNKNOWN_DEV_EUI = "70b3d57ed0001234"
BROKEN_F_CNT = 10_000    # frame counters from here on mark the deliberately broken frames
ON_PURPOSE = "sent on purpose"   # labels the demo's bad input, so its warnings are not taken for real trouble
LOOPBACK = "127.0.0.0/8,::1/128"


@contextlib.asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[str]:
    if settings.database_url:
        yield settings.database_url
    else:
        async with embedded_postgres() as url:
            yield url


@contextlib.asynccontextmanager
async def _broker(settings: Settings) -> AsyncIterator[str]:
    if settings.mqtt_url:
        yield settings.mqtt_url
    else:
        async with embedded_mosquitto() as url:
            yield url


def demo_networks(settings: Settings, broker_url: str) -> str:
    """Where the demo's consumers may point: what the operator allows, plus loopback (the demo's webhook and
    embedded broker) and the broker's address when ``IOTD_MQTT_URL`` names one by IP (the MQTT consumer)."""
    host = broker_address(broker_url)[0]
    literal = parse_address(host)
    extra = [f"{literal}/{literal.max_prefixlen}"] if literal is not None else []
    return ",".join(n for n in (settings.consumer_allowed_networks, LOOPBACK, *extra) if n)


async def register(database_url: str, key_material: str, webhook_url: str, broker_url: str) -> tuple[str, str]:
    """Register the demo tenant (replacing an earlier one); returns its id and an admin API key for it."""
    pool = await create_pool(database_url)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            box = await open_secret_box(conn, key_material)
            existing = await conn.fetchval("SELECT id FROM organizations WHERE name = 'Demo City'")
            if existing:
                await conn.execute("DELETE FROM organizations WHERE id = $1", existing)
            org = await store.create_organization(conn, "Demo City")
            app = await store.create_application(conn, org, "Indoor climate in schools")
            for d in DEVICES:
                await store.create_device(conn, box, application_id=app, name=d.name, dev_eui=d.dev_eui,
                                          decoder=d.decoder, tags={"room": d.room}, lat=56.1572, lon=10.2107)
            hook = await store.create_consumer(conn, box, organization_id=org, name="department webhook",
                                               kind="http", url=webhook_url, secret="demo-signing-secret")
            host, port, *_ = broker_address(broker_url)
            topic = await store.create_consumer(
                conn, box, organization_id=org, name="open data topic", kind="mqtt", format="senml",
                url=f"mqtt://{host}:{port}/city/demo/{{device_name}}")
            await store.create_subscription(conn, consumer_id=hook, application_id=app)
            await store.create_subscription(conn, consumer_id=topic, application_id=app)
            # The demo's ChirpStack tenant belongs to Demo City (registry.tenancy), so the demo key sees the
            # unknown device the feed sends under it (GET /api/v1/unknown-devices) and may register it.
            await conn.execute("INSERT INTO chirpstack_mappings (organization_id, tenant_id) VALUES ($1, $2)"
                               " ON CONFLICT DO NOTHING", org, DEMO_TENANT_ID)
            key = await create_first_key(conn, "demo", organization_id=org)
        return org, key
    finally:
        await pool.close()


def _summary(message: dict[str, Any]) -> str:
    values = ", ".join(f"{m['name']}={m['value']} {m['unit']}" for m in message.get("measurements", []))
    status = message.get("decoder", {}).get("status")
    deliberate = (message.get("network", {}).get("f_cnt") or 0) >= BROKEN_F_CNT
    label = f"  <- the broken frame {ON_PURPOSE}, delivered raw" if deliberate else ""
    return f"{message['device']['name']:<16} {values or '(raw only)'}  [decoder {status}]{label}"


async def _webhook_receiver(port: int, seen: list[int]) -> web.AppRunner:
    async def receive(request: web.Request) -> web.Response:
        message = orjson.loads(await request.read())
        seen[0] += 1
        print(f"  webhook  <- {_summary(message)}", flush=True)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def _topic_watcher(broker_url: str, seen: list[int]) -> None:
    host, port, *_ = broker_address(broker_url)
    async with aiomqtt.Client(host, port, identifier=f"iotd-demo-watch-{secrets.token_hex(3)}") as client:
        await client.subscribe("city/demo/#", qos=1)
        async for msg in client.messages:
            pack = orjson.loads(bytes(msg.payload))  # type: ignore[arg-type]
            seen[1] += 1
            text = ", ".join(f"{r['n']}={r.get('v', r.get('vs', r.get('vd')))}" for r in pack)
            print(f"  mqtt     <- {msg.topic}  senml[{text}]", flush=True)


async def _feed(broker_url: str, interval_s: float) -> None:
    host, port, *_ = broker_address(broker_url)
    started = time.time()
    async with aiomqtt.Client(host, port, identifier=f"iotd-demo-feed-{secrets.token_hex(3)}") as client:
        f_cnt = 0
        while True:
            f_cnt += 1
            t = time.time() - started
            for d in DEVICES:
                ev = uplink_event(dev_eui=d.dev_eui, data=d.frame(t), f_cnt=f_cnt, f_port=d.f_port,
                                  device_name=d.name)
                await client.publish(f"application/demo/device/{d.dev_eui}/event/up", to_json(ev), qos=1)
            if f_cnt % 5 == 1:  # now and then: a status report, a stranger, a broken frame, a bad event
                print(f"  demo     -> bad input {ON_PURPOSE}, to show how iotd handles it: an unknown device"
                      f" {UNKNOWN_DEV_EUI} (see /api/v1/unknown-devices), a frame its decoder rejects and an event"
                      " that is not JSON; the warnings about them below are expected", flush=True)
                await client.publish(f"application/demo/device/{DEVICES[0].dev_eui}/event/status",
                                     to_json(status_event(DEVICES[0].dev_eui)), qos=1)
                stranger = uplink_event(dev_eui=UNKNOWN_DEV_EUI, data=b"\x01\x02", f_cnt=f_cnt)
                await client.publish(f"application/demo/device/{UNKNOWN_DEV_EUI}/event/up", to_json(stranger),
                                     qos=1)
                broken = uplink_event(dev_eui=DEVICES[0].dev_eui, data=b"\x99\x00", f_cnt=BROKEN_F_CNT + f_cnt)
                await client.publish(f"application/demo/device/{DEVICES[0].dev_eui}/event/up", to_json(broken),
                                     qos=1)
                await client.publish(f"application/demo/device/{DEVICES[0].dev_eui}/event/up", b"{not json",
                                     qos=1)
            await asyncio.sleep(interval_s)


def _shown_host(host: str) -> str:
    """The address to print in URLs: a wildcard listens on loopback too."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else (f"[{host}]" if ":" in host else host)


def _reach(host: str) -> str:
    if host.startswith("127.") or host in ("::1", "localhost"):
        return "this machine only"
    return "reachable from the network, with the admin key below"


async def run_demo(settings: Settings, duration_s: float | None, interval_s: float) -> int:
    if settings.database_url and not settings.secret_key:   # a new key per run would not open the last run's data
        print("iotd demo: IOTD_DATABASE_URL is set, so set IOTD_SECRET_KEY too: it is the key of that database's"
              " stored credentials, and must be the same on every run", file=sys.stderr, flush=True)
        return 2
    settings.secret_key = settings.secret_key or secrets.token_urlsafe(32)   # embedded database: new every run
    webhook_port = free_port()
    seen = [0, 0]
    async with _database(settings) as db_url, _broker(settings) as broker_url:
        settings.database_url, settings.mqtt_url = db_url, broker_url
        settings.consumer_allowed_networks = demo_networks(settings, broker_url)
        _, api_key = await register(db_url, settings.secret_key, f"http://127.0.0.1:{webhook_port}/hook", broker_url)
        receiver = await _webhook_receiver(webhook_port, seen)
        wanted = settings.http_port
        try:
            await asyncio.to_thread(probe_port, settings.http_host, wanted)
        except OSError as exc:   # a name that does not resolve fails below, in the service's own words
            if getattr(exc, "errno", None) == errno.EADDRINUSE:
                print(f"port {wanted} is busy; using a free one", flush=True)
                settings.http_port = 0
        service = Service(settings)
        await service.start()
        base = f"http://{_shown_host(settings.http_host)}:{service.http_port}"
        print(f"\niotd demo is running.\n  API docs : {base}/docs\n  metrics  : {base}/metrics\n"
              f"  ready    : {base}/readyz\n"
              f"  listening: {settings.http_host}:{service.http_port} ({_reach(settings.http_host)}; another port:"
              f" --port N, another address: --host)\n"
              f"  API key  : {api_key}  (admin of Demo City; try:\n"
              f"             curl -H 'Authorization: Bearer {api_key}' {base}/api/v1/devices)\n"
              f"  broker   : {broker_url} (ChirpStack topic application/+/device/+/event/+)\n"
              f"Decoded messages as the consumers receive them (Ctrl-C to stop):\n", flush=True)
        tasks = [asyncio.create_task(_topic_watcher(broker_url, seen)), asyncio.create_task(_feed(broker_url,
                                                                                                 interval_s))]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        import signal

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration_s)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await service.stop()
        await receiver.cleanup()
    print(f"\ndemo stopped: {seen[0]} messages at the webhook, {seen[1]} on the MQTT topic", flush=True)
    return 0 if seen[0] and seen[1] else 1
