"""Devices as CSV: parse an uploaded file into cleaned rows, and write devices out again. Pure, no I/O.

The file has a header row (line 1) naming some of ``COLUMNS``; ``name`` and ``kind`` are required.
Comma or semicolon delimited (a header with more ``;`` than ``,`` means semicolons, as Excel writes
in Denmark), UTF-8 with or without a BOM, LF or CRLF. Cells:

* empty means "no value" (``tags`` and ``metadata`` become empty), except ``app_key``: an empty
  app_key keeps the stored one, so an exported file (which never contains keys) imports unchanged;
* ``tags`` is ``key=value;key=value`` (``\\;``, ``\\=`` and ``\\\\`` escape those characters);
* ``metadata`` is a JSON object; ``lat``/``lon`` accept a decimal comma (``55,67``).

A column the header leaves out is not touched on update. Every row goes through
``clean_device``, the one validation of a device, so the reasons read like the API's.

Bounds: a cell longer than ``MAX_CELL`` characters (metadata included) or holding a NUL character
is that row's error, checked before the cell is parsed; the file is read one physical line at a
time, so a 19 MB cell full of line breaks costs about its own size, not a list of millions of lines.

Formula injection: a spreadsheet runs a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return as a formula. The export writes such a text cell (and one starting with ``'``) with
a leading ``'``, which spreadsheets show as text; the import removes that one ``'`` again, so export
then import changes nothing. Numeric columns (``lat``, ``lon``, ``interval_s``) stay numbers: a
negative coordinate is exported as ``-12.5``.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import orjson

from registry.device_rules import clean_device
from registry.store import RegistryError

COLUMNS = ("name", "kind", "application_id", "dev_eui", "join_eui", "app_key", "imei", "imsi", "decoder",
           "lat", "lon", "interval_s", "tags", "metadata")
REQUIRED = ("name", "kind")
MAX_ROWS = 50_000
MAX_BYTES = 20 * 1024 * 1024
MAX_INTERVAL_S = 366 * 86400
MAX_CELL = 64 * 1024             # characters in one cell
MAX_BLANK_LINES = MAX_ROWS       # empty lines skipped before the file is refused (each costs a loop turn)
NUMERIC = ("lat", "lon", "interval_s")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_GUARD = "'"
_TEXT_LIMITS = {"name": 200, "decoder": 200, "dev_eui": 40, "join_eui": 40, "app_key": 64, "imei": 20, "imsi": 20}
STATUSES = ("created", "updated", "unchanged", "error")


class CsvFileError(ValueError):
    """The file as a whole cannot be imported (no header, an unknown column, too many rows)."""


@dataclass(frozen=True, slots=True)
class ParsedRow:
    """A row that passed ``clean_device``: ``fields`` holds the file's columns only (app_key only when given)."""

    line: int
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RowResult:
    """What happened to one row; ``ingest_key`` is set once, for a created device that pushes its messages."""

    line: int
    status: str                   # created | updated | unchanged | error
    device_id: str | None = None
    reason: str | None = None
    ingest_key: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "status": self.status, "device_id": self.device_id, "reason": self.reason,
                "ingest_key": self.ingest_key}


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a file for one request: the header line plus whole records, copied verbatim."""

    text: str
    first_line: int               # the file's line number of the piece's line 2
    rows: int

    def file_line(self, line: int) -> int:
        """The file's line number for a line number within this piece."""
        return line - 2 + self.first_line


class _Lines:
    """The physical lines of a text, read one at a time by C code (``\\r\\n``, ``\\r`` and ``\\n`` end a line, as
    for ``csv``). By default over the text's UTF-8 bytes (about one byte per character more); with ``offsets``
    over an ``io.StringIO`` (four bytes per character), whose ``end`` tells where the last line read ends."""

    def __init__(self, text: str, *, offsets: bool = False) -> None:
        self.text = text.removeprefix("\ufeff")
        self._offsets = offsets
        self.io: io.TextIOBase = io.StringIO(self.text, newline="") if offsets else io.TextIOWrapper(
            io.BytesIO(self.text.encode("utf-8", "surrogatepass")), encoding="utf-8", errors="surrogatepass",
            newline="")

    def first(self) -> str | None:
        return self.io.readline() or None

    @property
    def end(self) -> int:
        return self.io.tell() if self._offsets else -1


def sniff_delimiter(header_line: str) -> str:
    return ";" if header_line.count(";") > header_line.count(",") else ","


def _records(lines: _Lines, delimiter: str) -> Iterator[tuple[int, int, int, list[str]]]:
    """(first line, last line, end offset, cells) of every record after the header, blank ones skipped."""
    reader = csv.reader(lines.io, delimiter=delimiter)
    done, blank = 1, 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                raise CsvFileError(f"line {done + 1}: a cell is longer than {MAX_CELL} characters") from None
            raise CsvFileError(f"line {done + 1}: {exc}") from None
        first, done = done + 1, reader.line_num + 1
        if any(c.strip() for c in cells):
            yield first, done, lines.end, cells
        else:
            blank += 1
            if blank > MAX_BLANK_LINES:
                raise CsvFileError(f"more than {MAX_BLANK_LINES} empty lines; remove them")


def _header(first_line: str | None) -> tuple[list[str], str]:
    if not first_line or not first_line.strip():
        raise CsvFileError(f"the first line must be a header naming the columns: {', '.join(COLUMNS)}")
    delimiter = sniff_delimiter(first_line)
    names = [c.strip().lower() for c in next(csv.reader([first_line], delimiter=delimiter))]
    unknown = [n for n in names if n and n not in COLUMNS]     # unnamed columns (trailing delimiters) are ignored
    if unknown:
        raise CsvFileError(f"unknown column{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))};"
                           f" the columns are {', '.join(COLUMNS)}")
    twice = sorted({n for n in names if n and names.count(n) > 1})
    if twice:
        raise CsvFileError(f"column {', '.join(twice)} appears more than once in the header")
    missing = [n for n in REQUIRED if n not in names]
    if missing:
        raise CsvFileError(f"the header lacks the required column{'s' if len(missing) > 1 else ''}"
                           f" {', '.join(missing)}")
    if ("lat" in names) != ("lon" in names):
        raise CsvFileError("lat and lon go together: give both columns or neither")
    return names, delimiter


def _cell_problem(names: list[str], cells: list[str]) -> str | None:
    """Why a row's cells cannot even be parsed (NUL, size), before anything is built from them."""
    for name, cell in zip(names, cells, strict=True):
        if "\x00" in cell:
            return f"{name or 'a cell'} contains a NUL character; remove it"
        if len(cell) > MAX_CELL:
            return f"{name or 'a cell'} is longer than {MAX_CELL} characters"
    return None


def parse_rows(text: str, max_rows: int = MAX_ROWS) -> list[RowResult | ParsedRow]:
    """Every data row as a ``ParsedRow``, or a ``RowResult`` with status error and the reason.

    Raises ``CsvFileError`` for a problem with the whole file.
    """
    lines = _Lines(text)
    names, delimiter = _header(lines.first())
    out: list[RowResult | ParsedRow] = []
    for first, _, _, cells in _records(lines, delimiter):
        if len(out) == max_rows:
            raise CsvFileError(f"more than {max_rows} rows; split the file")
        if len(cells) != len(names):
            out.append(RowResult(first, "error", reason=f"{len(cells)} values, but the header has"
                                                        f" {len(names)} columns"))
            continue
        problem = _cell_problem(names, cells)
        if problem is not None:
            out.append(RowResult(first, "error", reason=problem))
            continue
        try:
            out.append(ParsedRow(first, parse_cells(dict(zip(names, cells, strict=True)))))
        except RegistryError as exc:
            out.append(RowResult(first, "error", reason=str(exc)))
    return out


def guard_formula(cell: str) -> str:
    """A text cell as the export writes it: a leading ``'`` when a spreadsheet would run it as a formula
    (or when it starts with ``'`` itself, so the import's ``unguard_formula`` gives it back unchanged)."""
    return _GUARD + cell if cell.startswith((*_FORMULA_START, _GUARD)) else cell


def unguard_formula(cell: str) -> str:
    """The import's inverse of ``guard_formula``: one leading ``'`` before such a start is removed."""
    if cell.startswith(_GUARD) and cell[1:].startswith((*_FORMULA_START, _GUARD)):
        return cell[1:]
    return cell


def parse_cells(cells: Mapping[str, str]) -> dict[str, Any]:
    """One row's text cells as cleaned device fields; raises ``RegistryError`` saying what is wrong."""
    fields: dict[str, Any] = {}
    for column, raw in cells.items():
        value = unguard_formula(raw.strip())
        if not column:
            continue
        if column == "app_key":
            if value:
                fields["app_key"] = value
        elif column == "application_id":
            fields[column] = _uuid(value) if value else None
        elif column in ("lat", "lon"):
            fields[column] = _number(column, value) if value else None
        elif column == "interval_s":
            fields[column] = _interval(value) if value else None
        elif column == "tags":
            fields[column] = parse_tags(value)
        elif column == "metadata":
            fields[column] = _metadata(value)
        elif column == "kind":
            fields[column] = value.lower()
        else:
            limit = _TEXT_LIMITS.get(column)
            if limit is not None and len(value) > limit:
                raise RegistryError(f"{column} is longer than {limit} characters")
            fields[column] = value or None
    cleaned = clean_device(fields)
    return {k: v for k, v in cleaned.items() if k in fields}     # a column the file leaves out stays untouched


def _uuid(value: str) -> str:
    try:
        return str(UUID(value))
    except ValueError:
        raise RegistryError(f"application_id must be a UUID, got {value!r}") from None


def _number(column: str, value: str) -> float:
    text = value.replace(",", ".") if "." not in value else value
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise RegistryError(f"{column} must be a number, got {value!r}")
    return number


def _interval(value: str) -> int:
    try:
        seconds = int(value)
    except ValueError:
        seconds = 0
    if not 0 < seconds <= MAX_INTERVAL_S:
        raise RegistryError(f"interval_s must be whole seconds between 1 and {MAX_INTERVAL_S}, got {value!r}")
    return seconds


def _metadata(value: str) -> dict[str, Any]:
    if not value:
        return {}
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise RegistryError(f"metadata must be a JSON object, got {value[:60]!r}")
    return data


def parse_tags(value: str) -> dict[str, str]:
    """``key=value;key=value`` (backslash escapes ``;``, ``=`` and itself) as a dict."""
    tags: dict[str, str] = {}
    escaped = "\\" in value
    for pair in _split_escaped(value, ";") if escaped else value.split(";"):
        if not pair.strip():
            continue
        parts = _split_escaped(pair, "=", 1) if escaped else pair.split("=", 1)
        if len(parts) != 2 or not parts[0].strip():
            raise RegistryError(f"tags are key=value;key=value, got {pair.strip()!r}")
        key, text = (_unescape(parts[0]).strip(), _unescape(parts[1]).strip()) if escaped else (
            parts[0].strip(), parts[1].strip())
        if key in tags:
            raise RegistryError(f"tag {key!r} is given twice")
        if len(key) > 100 or len(text) > 500:
            raise RegistryError(f"tag {key[:100]!r}: keys are at most 100 characters, values 500")
        tags[key] = text
    return tags


def _split_escaped(text: str, sep: str, limit: int = -1) -> list[str]:
    """Split on ``sep`` not preceded by a backslash escape; the escapes stay for ``_unescape``."""
    parts, start, i = [], 0, 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == sep and limit != 0:
            parts.append(text[start:i])
            start = i + 1
            limit -= 1
        i += 1
    parts.append(text[start:])
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def format_tags(tags: Mapping[str, str]) -> str:
    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace(";", "\\;").replace("=", "\\=")
    return ";".join(f"{esc(k)}={esc(v)}" for k, v in sorted(tags.items()))


def export_rows(rows: Iterable[Mapping[str, Any]]) -> str:
    """Devices (as the API shows them) as CSV text with every column; ``app_key`` is always empty."""
    lines = [",".join(COLUMNS)]
    for row in rows:
        lines.append(",".join(_quote(_cell(row, column) if column in NUMERIC else guard_formula(_cell(row, column)))
                              for column in COLUMNS))
    return "\r\n".join(lines) + "\r\n"


def _cell(row: Mapping[str, Any], column: str) -> str:
    if column == "app_key":
        return ""
    value = row.get(column)
    if value is None:
        return ""
    if column == "tags":
        return format_tags(value)
    if column == "metadata":
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode() if value else ""
    return str(value)


def _quote(cell: str) -> str:
    if any(ch in cell for ch in ',"\r\n;') or cell != cell.strip():
        return '"' + cell.replace('"', '""') + '"'
    return cell


def split_chunks(text: str, size: int) -> tuple[list[Chunk], int]:
    """Cut a file into pieces of at most ``size`` data rows for separate requests; also the row count.

    Each piece is the header line followed by a verbatim slice of the file, so a line number the
    server reports for a piece maps back with ``Chunk.file_line``.
    """
    lines = _Lines(text, offsets=True)
    first_line = lines.first()
    _, delimiter = _header(first_line)
    assert first_line is not None
    header = first_line if first_line.endswith(("\n", "\r")) else first_line + "\r\n"
    chunks: list[Chunk] = []
    start_line, start_at, rows, total = 2, lines.end, 0, 0
    for _, last, end_at, _ in _records(lines, delimiter):
        rows += 1
        total += 1
        if rows == size:
            chunks.append(Chunk(header + lines.text[start_at:end_at], start_line, rows))
            start_line, start_at, rows = last + 1, end_at, 0
    if rows:
        chunks.append(Chunk(header + lines.text[start_at:], start_line, rows))
    return chunks, total
