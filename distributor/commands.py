"""Service commands of the CLI (serve, demo); kept apart so `iotd decode` starts fast."""

from __future__ import annotations

import argparse
import asyncio


def cmd_serve(args: argparse.Namespace) -> int:
    from distributor.logging import configure
    from distributor.service import Service
    from distributor.settings import Settings

    settings = Settings()
    configure(settings.log_level, settings.log_format)
    try:
        service = Service(settings)
    except ValueError as exc:
        raise SystemExit(f"iotd serve: {exc}") from exc
    asyncio.run(service.run())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from distributor.demo import run_demo
    from distributor.logging import configure
    from distributor.settings import Settings

    settings = Settings()
    if args.port is not None:
        settings.http_port = args.port
    configure("warning", "console")
    return asyncio.run(run_demo(settings, args.duration, args.interval))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the service commands to the CLI."""
    p = sub.add_parser("serve", help="run the distributor and its HTTP API (configured by IOTD_* variables)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help="run the service with a demo feed, on embedded PostgreSQL and Mosquitto "
                       "unless IOTD_DATABASE_URL / IOTD_MQTT_URL are set")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: run)")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between rounds of uplinks")
    p.add_argument("--port", type=int, default=None, help="HTTP port (default IOTD_HTTP_PORT or 8080)")
    p.set_defaults(func=cmd_demo)
