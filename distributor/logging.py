"""Structured logs with structlog: one JSON line per event, the message id on every line about a message.

Our own lines and every library's stdlib ``logging`` lines (asyncpg, gmqtt, uvicorn, aiohttp, asyncio)
go through the same renderer, so a quote, a newline or a multi-line traceback stays inside one JSON
string: a log shipper reads one event per line. A record that cannot be formatted (a library's bad
``%`` arguments), an uncaught exception and a warning become one line too, instead of the multi-line
text Python prints by default.

A line that names a consumer (``consumer=<id>``) or a device (``device=<id>``) also carries its name
(``consumer_name``; ``device_name`` and ``dev_eui``), looked up in the registry snapshot the service
holds in memory (``install_names``): an id alone means nothing to the person reading the log, and no
query is made for it.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from types import TracebackType
from typing import Any, Protocol

import orjson
import structlog

_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps(event: Any, **_: Any) -> str:
    """One line of JSON for any event: orjson, or the stdlib where orjson refuses (a lone surrogate)."""
    try:
        return orjson.dumps(event, default=str, option=_OPTIONS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(event, default=str, ensure_ascii=True)


class OneLineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that reports its own failures as one JSON line, not a printed traceback."""

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        try:
            self.stream.write(dumps({"event": "a log record could not be formatted", "level": "error",
                                     "logger": record.name, "template": str(record.msg)[:500],
                                     "error": f"{type(error).__name__}: {error}"}) + self.terminator)
            self.flush()
        except Exception:  # the stream itself is gone: nothing left to write to
            pass


class Names(Protocol):
    """Where log lines find the names of the ids they carry (the service's registry cache)."""

    def consumer_name(self, consumer_id: str) -> str | None: ...

    def device_names(self, device_id: str) -> tuple[str, str | None] | None: ...


_names: Names | None = None


def install_names(names: Names | None) -> None:
    """Name consumers and devices in log lines from ``names`` (None: ids only, as before a service starts)."""
    global _names
    _names = names


def add_names(_: Any, __: str, event: structlog.types.EventDict) -> structlog.types.EventDict:
    """A structlog processor: the consumer's name beside ``consumer``, the device's name and dev_eui beside
    ``device``; only what the line does not say already, and only ids the registry knows."""
    names = _names
    if names is None:
        return event
    consumer = event.get("consumer")
    if isinstance(consumer, str) and "consumer_name" not in event:
        name = names.consumer_name(consumer)
        if name is not None:
            event["consumer_name"] = name
    device = event.get("device")
    if isinstance(device, str) and "device_name" not in event:
        found = names.device_names(device)
        if found is not None:
            event["device_name"] = found[0]
            if found[1] is not None:
                event.setdefault("dev_eui", found[1])
    return event


def _renderer(fmt: str) -> structlog.types.Processor:
    if fmt == "console":
        return structlog.dev.ConsoleRenderer(colors=False)
    return structlog.processors.JSONRenderer(serializer=dumps)


def configure(level: str = "info", fmt: str = "json") -> None:
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    renderer = _renderer(fmt)
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_names,
            structlog.processors.add_log_level,
            stamp,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = OneLineHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, structlog.processors.add_log_level, stamp],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]  # replaced, not added: configuring twice must not print every line twice
    root.setLevel(max(numeric, logging.WARNING))   # libraries are chatty below warning
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_thread_exception


def _log_uncaught(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, tb)
        return
    logging.getLogger("iotd").critical("uncaught exception", exc_info=(kind, error, tb))


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    error = args.exc_value if args.exc_value is not None else args.exc_type()
    logging.getLogger("iotd").critical("uncaught exception in a thread", exc_info=(args.exc_type, error,
                                                                                  args.exc_traceback))
