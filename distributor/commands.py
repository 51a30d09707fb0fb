"""Service commands of the CLI (serve, demo); kept apart so `iotd decode` starts fast.

A problem the operator can fix (settings, database, port) ends a command with one line on stderr saying
what is wrong and what to do, and exit status 1 (``distributor.startup``); tracebacks are for bugs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncpg

    from distributor.settings import Settings


def load_settings(command: str) -> Settings:
    """``Settings()`` from ``IOTD_*``, or the end of ``command`` with one line per wrong variable."""
    from pydantic import ValidationError

    from distributor.settings import Settings
    from distributor.startup import settings_problem

    try:
        return Settings()
    except ValidationError as exc:
        raise SystemExit(f"iotd {command}: {settings_problem(exc)}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    from distributor.logging import configure
    from distributor.service import Service
    from distributor.startup import StartupError

    settings = load_settings("serve")
    if args.api_only:
        settings.run_distributor = False
    if args.distributor_only:
        settings.run_api = False
    configure(settings.log_level, settings.log_format)
    if args.processes > 1:
        if args.api_only:
            raise SystemExit("iotd serve: --processes is for intake and delivery; run --api-only as one process")
        from distributor.supervisor import supervise

        return supervise(settings, args.processes, ["--distributor-only"] if args.distributor_only else [])
    try:
        service = Service(settings)
        asyncio.run(service.run())
    except (ValueError, StartupError) as exc:
        raise SystemExit(f"iotd serve: {exc}") from None
    return 0


async def _admin_pool(url: str) -> asyncpg.Pool:
    """A pool for an admin command; a database that cannot be reached is ``StartupError``'s one line."""
    from distributor.startup import DATABASE_ERRORS, StartupError, database_problem
    from registry.db import create_pool

    try:
        return await create_pool(url)
    except DATABASE_ERRORS as exc:
        raise StartupError(database_problem(exc, url)) from None


def _run_admin(command: str, work: Coroutine[Any, Any, str]) -> str:
    from distributor.startup import StartupError

    try:
        return asyncio.run(work)
    except (ValueError, OSError, StartupError) as exc:
        raise SystemExit(f"iotd admin {command}: {exc}") from None


def cmd_create_key(args: argparse.Namespace) -> int:
    settings = load_settings("admin create-key")
    if not settings.database_url:
        raise SystemExit("iotd admin create-key: IOTD_DATABASE_URL is not set")
    organization = args.organization
    if organization is not None:
        import uuid

        try:
            organization = str(uuid.UUID(organization))
        except ValueError:
            raise SystemExit(f"iotd admin create-key: {organization!r} is not an organization id (a UUID such as"
                             " 0b6f3c52-5d0e-4c1e-9a57-2f1d7f5e8a10; GET /api/v1/organizations lists them)") from None
    print(_run_admin("create-key", _create_key(settings.database_url, args.name, organization, args.role)))
    return 0


async def _create_key(url: str, name: str, organization: str | None, role: str) -> str:
    from registry.api.errors import ApiError
    from registry.api.keys import create_first_key
    from registry.db import migrate

    pool = await _admin_pool(url)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            async with conn.transaction():
                return await create_first_key(conn, name, organization, role)
    except ApiError as exc:   # the organization does not exist
        where = f" (id {organization}; GET /api/v1/organizations lists them)" if organization else ""
        raise ValueError(exc.message + where) from None
    finally:
        await pool.close()


def cmd_create_user(args: argparse.Namespace) -> int:
    """Create a web console user, or set the password of the user with that e-mail (never printed)."""
    import sys

    from registry.console.users import organization_id, read_password

    settings = load_settings("admin create-user")
    if not settings.database_url:
        raise SystemExit("iotd admin create-user: IOTD_DATABASE_URL is not set")
    try:
        organization = organization_id(args.organization)
        password = read_password(sys.stdin)
    except ValueError as exc:
        raise SystemExit(f"iotd admin create-user: {exc}") from None
    print(_run_admin("create-user", _create_user(settings.database_url, args.email, args.role, organization,
                                                 args.name, password)))
    return 0


async def _create_user(url: str, email: str, role: str, organization: str | None, name: str | None,
                       password: str) -> str:
    from registry.console.users import create_or_set_password
    from registry.db import migrate

    pool = await _admin_pool(url)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            return await create_or_set_password(conn, email, role, organization, name, password)
    finally:
        await pool.close()


def cmd_create_integration_token(args: argparse.Namespace) -> int:
    """Print a new token for ChirpStack's HTTP integration (shown once; stored as its SHA-256)."""
    settings = load_settings("admin create-integration-token")
    if not settings.database_url:
        raise SystemExit("iotd admin create-integration-token: IOTD_DATABASE_URL is not set")
    print(_run_admin("create-integration-token",
                     _create_integration_token(settings.database_url, args.name, args.chirpstack_tenant)))
    return 0


async def _create_integration_token(url: str, name: str, tenant: str | None) -> str:
    from registry.api.integrations import create_token_from_cli
    from registry.db import migrate

    pool = await _admin_pool(url)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            async with conn.transaction():
                return await create_token_from_cli(conn, name, tenant)
    finally:
        await pool.close()


def check_url(given: str | None, environ: dict[str, str] | os._Environ[str]) -> str:
    """``--url``, else the local service on ``IOTD_HTTP_PORT`` (8080 when unset): the port it serves on."""
    if given:
        return given
    port = environ.get("IOTD_HTTP_PORT", "").strip() or "8080"
    if not (port.isascii() and port.isdigit()) or not 0 < int(port) <= 65535:
        raise SystemExit(f"iotd check: IOTD_HTTP_PORT is not a port number (got {port[:20]!r}); or give --url")
    return f"http://127.0.0.1:{int(port)}"


def cmd_check(args: argparse.Namespace) -> int:
    """Exit 0 when the service at ``--url`` is ready (database and broker reachable), else 1."""
    import httpx

    url = check_url(args.url, os.environ)
    try:
        r = httpx.get(f"{url.rstrip('/')}/readyz", timeout=args.timeout)
    except httpx.HTTPError as exc:
        print(f"iotd check: {url} does not answer ({exc}): is the service running, on this port? (--url or"
              " IOTD_HTTP_PORT)")
        return 1
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    for name, check in (body.get("checks") or {}).items():
        print(f"{name}: {'ok' if check.get('ok') else 'FAILING ' + str(check.get('error', ''))}")
    return 0 if r.status_code == 200 else 1


def cmd_demo(args: argparse.Namespace) -> int:
    """The demo; Ctrl-C at any moment (even while the embedded database starts) ends it without a traceback."""
    from distributor.demo import run_demo
    from distributor.logging import configure
    from distributor.startup import StartupError

    settings = load_settings("demo")
    if args.port is not None:
        settings.http_port = args.port
    # loopback unless asked (--host or IOTD_HTTP_HOST): the demo prints an admin key
    settings.http_host = args.host or os.environ.get("IOTD_HTTP_HOST") or "127.0.0.1"
    configure("warning", "console")
    try:
        return asyncio.run(run_demo(settings, args.duration, args.interval))
    except KeyboardInterrupt:   # Ctrl-C before the demo's own handler was installed
        print("\ndemo stopped", flush=True)
        return 130
    except StartupError as exc:
        raise SystemExit(f"iotd demo: {exc}") from None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the service commands to the CLI."""
    p = sub.add_parser("serve", help="run the distributor and its HTTP API (configured by IOTD_* variables)")
    only = p.add_mutually_exclusive_group()
    only.add_argument("--api-only", action="store_true", help="serve the REST API only (no intake, no delivery)")
    only.add_argument("--distributor-only", action="store_true", help="run intake and delivery without the REST API")
    p.add_argument("--processes", type=int, default=1, metavar="N",
                   help="run N distributor processes sharing the ChirpStack subscription (default 1); "
                        "process k > 0 serves /metrics on IOTD_HTTP_PORT + k")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("check", help="exit 0 when a running service is ready (for container and systemd checks)")
    p.add_argument("--url", default=None,
                   help="the service (default http://127.0.0.1:$IOTD_HTTP_PORT, or port 8080 when that is unset)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for an answer")
    p.set_defaults(func=cmd_check)

    admin = sub.add_parser("admin", help="installation tasks that need no API key")
    asub = admin.add_subparsers(dest="admin_command", required=True, metavar="ACTION")
    p = asub.add_parser("create-key", help="create an API key and print it (shown once)",
                        description="Create an API key directly in the database (IOTD_DATABASE_URL). Use --global "
                                    "on a new installation to get the first admin key.")
    scope = p.add_mutually_exclusive_group(required=True)
    scope.add_argument("--global", dest="global_key", action="store_true", help="a global key (all organizations)")
    scope.add_argument("--organization", metavar="ID", help="a key for one organization")
    p.add_argument("--role", choices=("admin", "write", "read"), default="admin", help="default: admin")
    p.add_argument("--name", default="created from the command line", help="a label to recognise the key")
    p.set_defaults(func=cmd_create_key)
    p = asub.add_parser("create-user", help="create a web console user, or set an existing user's password",
                        description="Create a user who signs in to the web console (IOTD_DATABASE_URL), or set the"
                                    " password of the user with this e-mail. The password is asked twice, or read"
                                    " from the first line of stdin when stdin is not a terminal; at least 12"
                                    " characters.")
    p.add_argument("email", metavar="EMAIL", help="the e-mail address the user signs in with")
    scope = p.add_mutually_exclusive_group(required=True)
    scope.add_argument("--global", dest="global_user", action="store_true", help="a global user (all organizations)")
    scope.add_argument("--organization", metavar="ID", help="a user of one organization")
    p.add_argument("--role", choices=("admin", "write", "read"), required=True, help="what the user may do")
    p.add_argument("--name", default=None, help="the user's name (default: the e-mail address)")
    p.set_defaults(func=cmd_create_user)
    p = asub.add_parser("create-integration-token", help="create a token for ChirpStack's HTTP integration and print"
                        " it (shown once)", description="ChirpStack sends it as `Authorization: Bearer <token>` to"
                        " POST /ingest/chirpstack (an HTTP header in the integration's settings).")
    p.add_argument("--chirpstack-tenant", metavar="ID", help="accept only events of this ChirpStack tenant id")
    p.add_argument("--name", default="created from the command line", help="a label to recognise the token")
    p.set_defaults(func=cmd_create_integration_token)

    p = sub.add_parser("demo", help="run the service with a demo feed, on embedded PostgreSQL and Mosquitto "
                       "unless IOTD_DATABASE_URL / IOTD_MQTT_URL are set")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: run)")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between rounds of uplinks")
    p.add_argument("--port", type=int, default=None,
                   help="HTTP port (default IOTD_HTTP_PORT or 8080; a free one when that is busy)")
    p.add_argument("--host", default=None,
                   help="address to listen on (default IOTD_HTTP_HOST, else 127.0.0.1: this machine only; 0.0.0.0 for"
                        " every interface)")
    p.set_defaults(func=cmd_demo)
