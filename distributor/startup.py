"""What ``iotd`` says when it cannot start: one line naming the problem and the fix, never a traceback.

A service that cannot reach its database, whose port is taken or whose settings are wrong is an
operator's problem, not a bug: the operator needs the cause and the next step, and a 60-line
traceback buries both. ``Service.start`` raises ``StartupError`` with that line; the CLI prints it
and exits 1. A broker that is down is not a start-up error: the service starts, retries it with
``broker_retry_delay`` and says why in ``/readyz`` (the broker is often restarted with it).

The functions here only turn an exception into words; they do no I/O (``probe_port`` aside).
"""

from __future__ import annotations

import errno
import socket
from urllib.parse import unquote, urlsplit

import asyncpg
from pydantic import ValidationError

BROKER_RETRY_FIRST_S = 1.0
BROKER_RETRY_MAX_S = 30.0
DETAIL_MAX = 300      # an error text from outside is cut to this many characters


class StartupError(Exception):
    """A start-up failure the operator can fix; ``str()`` is the one line to print."""


def _cut(text: object) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= DETAIL_MAX else line[:DETAIL_MAX] + "…"


def _database_parts(url: str) -> tuple[str, str, str, str]:
    """(host, port, user, database) of a PostgreSQL URL, for messages; never the password."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "localhost", str(parts.port or 5432)
    except ValueError:
        return "?", "?", "?", "?"
    return host, port, unquote(parts.username or "postgres"), unquote(parts.path.lstrip("/")) or "(default)"


def database_problem(exc: BaseException, url: str) -> str:
    """The line for a failure to connect to PostgreSQL or to prepare the database."""
    host, port, user, name = _database_parts(url)
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return (f"the database {name!r} does not exist on {host}:{port}: create it (createdb -h {host} -p {port}"
                f" -U {user} {name}) or correct the database name in IOTD_DATABASE_URL")
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):   # wrong password, unknown role
        return (f"PostgreSQL at {host}:{port} refused the login of {user!r} ({_cut(exc)}): check the user and"
                " password in IOTD_DATABASE_URL")
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return (f"the database user {user!r} may not create iotd's tables in {name!r} ({_cut(exc)}): grant it"
                " CREATE on the database (or make it the owner)")
    if isinstance(exc, ValueError):   # asyncpg's ClientConfigurationError is one too: a URL it cannot read
        return (f"IOTD_DATABASE_URL is not a usable PostgreSQL URL ({_cut(exc)}): write it as"
                " postgresql://user:password@host:5432/database")
    if isinstance(exc, socket.gaierror):
        return (f"cannot resolve the database host {host!r} ({exc.strerror}): correct the host in"
                " IOTD_DATABASE_URL")
    if isinstance(exc, ConnectionRefusedError):
        return (f"nothing accepts connections at {host}:{port} (connection refused): start PostgreSQL there or"
                " correct the host and port in IOTD_DATABASE_URL")
    if isinstance(exc, TimeoutError):
        return f"PostgreSQL at {host}:{port} did not answer in time: check the host, port and firewall"
    if isinstance(exc, OSError):
        return (f"cannot connect to PostgreSQL at {host}:{port} ({_cut(exc.strerror or exc)}): check that it runs"
                " and IOTD_DATABASE_URL")
    return f"PostgreSQL at {host}:{port} refused to start iotd ({type(exc).__name__}: {_cut(exc)})"


DATABASE_ERRORS = (OSError, TimeoutError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError)


def http_problem(exc: OSError, host: str, port: int) -> str:
    """The line for a failure to listen on ``IOTD_HTTP_HOST``:``IOTD_HTTP_PORT``."""
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve IOTD_HTTP_HOST {host!r} ({exc.strerror}): use an address such as 127.0.0.1 or 0.0.0.0"
    if exc.errno == errno.EADDRINUSE:
        return (f"port {port} on {host} is already in use (another iotd, or another server): stop it, or set"
                " IOTD_HTTP_PORT to a free port")
    if exc.errno == errno.EACCES:
        return (f"no permission to listen on port {port}: set IOTD_HTTP_PORT to a port above 1023, or grant the"
                " service CAP_NET_BIND_SERVICE")
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine: correct IOTD_HTTP_HOST (0.0.0.0 listens on all)"
    return f"cannot listen on {host}:{port} ({_cut(exc.strerror or exc)}): check IOTD_HTTP_HOST and IOTD_HTTP_PORT"


def probe_port(host: str, port: int) -> None:
    """Bind ``host``:``port`` as the HTTP server will, and let go; raises the ``OSError`` it would meet.

    Checked before the database is touched, so a busy port fails at once and with its own words (uvicorn
    would log one line of its own and exit the process from inside the event loop). Port 0 is always free.
    """
    if port == 0:
        return
    for family, kind, proto, _, address in socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                              flags=socket.AI_PASSIVE):
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as asyncio's server does
            sock.bind(address)


def broker_problem(exc: BaseException, host: str, port: int) -> str:
    """Why the ChirpStack broker could not be reached, for the log and ``/readyz``."""
    where = f"{host}:{port}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the broker host {host!r} ({exc.strerror}); check IOTD_MQTT_URL"
    if isinstance(exc, ConnectionRefusedError):
        return f"nothing accepts connections at {where} (connection refused: is the broker running?)"
    if isinstance(exc, TimeoutError):
        return f"the broker at {where} did not accept the connection in time"
    if isinstance(exc, OSError):
        return f"cannot connect to the broker at {where} ({_cut(exc.strerror or exc)})"
    return f"the broker at {where} refused the connection ({type(exc).__name__}: {_cut(exc)}); check IOTD_MQTT_URL"


def broker_retry_delay(attempt: int) -> float:
    """Seconds before connection attempt ``attempt + 1`` (attempt 1 failed first): 1, 2, 4 … at most 30."""
    return float(min(BROKER_RETRY_MAX_S, BROKER_RETRY_FIRST_S * 2 ** max(0, min(attempt - 1, 10))))


def settings_problem(exc: ValidationError) -> str:
    """The line for ``IOTD_*`` variables that do not validate: each variable and what is wrong with it."""
    parts = []
    for error in exc.errors():
        name = "IOTD_" + "_".join(str(p) for p in error["loc"]).upper()
        message = error["msg"].removeprefix("Value error, ")
        got = _cut(error.get("input"))[:60]
        parts.append(f"{name}: {message} (got {got!r})")
    return "; ".join(parts)
