"""``iotd devices import|export``: devices as CSV through the REST API.

An import is sent in requests of ``CHUNK_ROWS`` data rows, each with the header line and a verbatim
slice of the file, so the line numbers in the output are the file's. Each request is one
transaction: when a request fails half-way, the earlier ones stay imported, and running the
same file again is safe (the import is idempotent).

Exit codes: 0 every row imported (or unchanged), 1 some rows refused, 2 usage or connection problems.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from pathlib import Path
from typing import Any, TextIO

import httpx

from registry.device_csv import Chunk, CsvFileError, split_chunks

CHUNK_ROWS = 1_000
DEFAULT_URL = "http://127.0.0.1:8080"
OK, ROWS_FAILED, USAGE = 0, 1, 2


class CliError(Exception):
    """A problem that stops the command with exit code 2; the message says what to do."""


def _client(args: argparse.Namespace, timeout: float = 300.0) -> httpx.Client:
    if not args.key:
        raise CliError("no API key: pass --key or set IOTD_API_KEY")
    return httpx.Client(base_url=args.api_url.rstrip("/"), headers={"Authorization": f"Bearer {args.key}"},
                        timeout=timeout)


def _send(client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    try:
        response = client.request(method, f"/api/v1/{path}", **kwargs)
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach the API at {client.base_url}: {exc or type(exc).__name__}") from None
    if response.status_code != 200:
        raise CliError(f"the API answered {response.status_code}: {_error_of(response)}")
    return response


def _error_of(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return response.text[:300] or response.reason_phrase


def _run(command: str, func: Any, args: argparse.Namespace) -> int:
    try:
        code: int = func(args)
    except CliError as exc:
        print(f"iotd devices {command}: {exc}", file=sys.stderr)
        return USAGE
    return code


def cmd_import(args: argparse.Namespace) -> int:
    return _run("import", _import, args)


def _import(args: argparse.Namespace) -> int:
    from tqdm import tqdm  # type: ignore[import-untyped]

    try:
        text = Path(args.file).read_bytes().decode(args.encoding)
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, LookupError):
        raise CliError(f"{args.file} is not {args.encoding} text; save it as \"CSV UTF-8\" or pass"
                       " --encoding (e.g. windows-1252)") from None
    try:
        chunks, total = split_chunks(text, CHUNK_ROWS)
    except CsvFileError as exc:
        raise CliError(f"{args.file}: {exc}") from None
    params: dict[str, str] = {"dry_run": "true" if args.dry_run else "false"}
    if args.application:
        params["application_id"] = args.application
    counts = {"created": 0, "updated": 0, "unchanged": 0, "errors": 0}
    errors: list[tuple[int, str]] = []
    keys: list[tuple[int, str, str]] = []
    with _client(args) as client, tqdm(total=total, unit="row", desc="import", **progress_options(sys.stderr)) as bar:
        for chunk in chunks:
            try:
                result = _send(client, "POST", "devices/import", params=params, content=chunk.text.encode(),
                               headers={"Content-Type": "text/csv; charset=utf-8"}).json()
            except CliError as exc:
                done = sum(counts.values())
                if done:
                    _summary(args, counts, errors)
                raise CliError(f"{exc} (at line {chunk.first_line}; {done} rows before it were"
                               f" {'checked' if args.dry_run else 'imported'}; running again is safe)") from None
            _collect(chunk, result, counts, errors, keys)
            bar.update(chunk.rows)
    _summary(args, counts, errors)
    if keys:
        _save_keys(args, keys)
    return ROWS_FAILED if counts["errors"] else OK


def progress_options(stream: TextIO) -> dict[str, Any]:
    """tqdm options for a bar on ``stream``: shown only on a terminal, and never zero columns wide.

    A terminal that reports a size of 0x0 (``docker exec -t``, ``script``, some serial and CI
    terminals) made tqdm print nothing at all (zero rows leave no line for the bar), so the import
    looked stuck: the size is then ``COLUMNS``/``LINES`` or 80x24. Into a pipe or a file there is no
    bar (the summary on stdout stays clean).
    """
    if not stream.isatty():
        return {"disable": True}
    try:
        columns, lines = os.get_terminal_size(stream.fileno())
    except (OSError, ValueError):
        columns = lines = 0
    return {"disable": False, "file": stream, "dynamic_ncols": False,
            "ncols": columns if columns > 0 else _env_size("COLUMNS", 80),
            "nrows": lines if lines > 0 else _env_size("LINES", 24)}


def _env_size(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.isascii() and value.isdigit() and 0 < int(value) < 10_000 else default


def _collect(chunk: Chunk, result: dict[str, Any], counts: dict[str, int], errors: list[tuple[int, str]],
             keys: list[tuple[int, str, str]]) -> None:
    for name in counts:
        counts[name] += int(result[name])
    for row in result["rows"]:
        line = chunk.file_line(int(row["line"]))
        if row["status"] == "error":
            errors.append((line, str(row["reason"])))
        if row.get("ingest_key"):
            keys.append((line, str(row["device_id"]), str(row["ingest_key"])))


def _summary(args: argparse.Namespace, counts: dict[str, int], errors: list[tuple[int, str]]) -> None:
    print(f"created {counts['created']}, updated {counts['updated']}, unchanged {counts['unchanged']},"
          f" errors {counts['errors']}" + (" (dry run: nothing was stored)" if args.dry_run else ""))
    for line, reason in sorted(errors):
        print(f"line {line}: {reason}")


def _save_keys(args: argparse.Namespace, keys: list[tuple[int, str, str]]) -> None:
    """Ingest keys of created devices are shown once: into --ingest-keys FILE (mode 600), never on screen."""
    if not args.ingest_keys:
        print(f"{len(keys)} new devices have ingest keys, not saved (use --ingest-keys FILE next time); issue new"
              " ones with POST /api/v1/devices/{id}/rotate-ingest-key", file=sys.stderr)
        return
    fd = os.open(args.ingest_keys, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(("line", "device_id", "ingest_key"))
        writer.writerows(sorted(keys))
    print(f"{len(keys)} ingest keys written to {args.ingest_keys}", file=sys.stderr)


def cmd_export(args: argparse.Namespace) -> int:
    return _run("export", _export, args)


def _export(args: argparse.Namespace) -> int:
    params = {name: value for name, value in (("application_id", args.application), ("kind", args.kind),
                                              ("decoder", args.decoder)) if value}
    with _client(args) as client:
        body = _send(client, "GET", "devices/export", params=params).content
    if args.output in (None, "-"):
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
        return OK
    try:
        Path(args.output).write_bytes(body)
    except OSError as exc:
        raise CliError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    rows = sum(1 for _ in csv.reader(io.StringIO(body.decode()))) - 1
    print(f"{rows} devices written to {args.output}", file=sys.stderr)
    return OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``devices import`` and ``devices export`` to the CLI."""
    api = argparse.ArgumentParser(add_help=False)
    api.add_argument("--api-url", default=os.environ.get("IOTD_API_URL", DEFAULT_URL),
                     help=f"the REST API (default IOTD_API_URL or {DEFAULT_URL})")
    api.add_argument("--key", default=os.environ.get("IOTD_API_KEY"), help="API key (default IOTD_API_KEY)")

    devices = sub.add_parser("devices", help="import and export devices as CSV through the REST API")
    dsub = devices.add_subparsers(dest="devices_command", required=True, metavar="ACTION")
    p = dsub.add_parser("import", parents=[api], help="create and update devices from a CSV file (idempotent)",
                        description="Columns: name, kind, application_id, dev_eui, join_eui, app_key, imei, imsi, "
                                    "decoder, lat, lon, interval_s, tags (key=value;key=value), metadata (JSON). "
                                    "Exit code 0: all rows fine; 1: some rows refused; 2: usage or connection.")
    p.add_argument("file", metavar="FILE.csv")
    p.add_argument("--application", metavar="ID", help="the application of rows without an application_id")
    p.add_argument("--dry-run", action="store_true", help="check every row, store nothing")
    p.add_argument("--encoding", default="utf-8-sig", help="the file's encoding (default UTF-8, BOM or not)")
    p.add_argument("--ingest-keys", metavar="FILE", help="write created devices' ingest keys here (mode 600)")
    p.set_defaults(func=cmd_import)
    p = dsub.add_parser("export", parents=[api], help="write the devices as CSV (never the app keys)")
    p.add_argument("-o", "--output", metavar="FILE", help="default: standard output")
    p.add_argument("--application", metavar="ID", help="only this application's devices")
    p.add_argument("--kind", choices=("lorawan", "nbiot", "http", "mqtt"))
    p.add_argument("--decoder", metavar="ID")
    p.set_defaults(func=cmd_export)
