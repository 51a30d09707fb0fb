"""Storing JavaScript decoders: the one place that checks a codec compiles and runs its examples
before it is saved (used by the API; the CLI's repository importers use ``slug`` and ``upsert``).

Trials (a check before saving, the test endpoints) run user code, so they never run in the API's
process and never on the distributor's workers: :class:`TrialRunner` sends them to a worker process
of their own (``decoders.js.worker``), one trial at a time with a few waiting (:class:`TrialBusy`
beyond), each under a hard deadline enforced by killing that worker. :func:`take_trial` rate-limits
them with a token bucket in PostgreSQL, shared by every instance.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from decoders import catalog
from decoders.js.trial import parse_examples
from decoders.js.worker_client import WorkerLost, WorkerProcess, WorkerTimeout
from registry.store import RegistryError

MAX_EXAMPLES = 100
TRIAL_DEADLINE_S = 10.0
TRIAL_BURST = 10
TRIAL_PER_S = 0.5

_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,79}$")


@dataclass(frozen=True, slots=True)
class Checked:
    """A codec that compiles, its dialect, and how its examples fared."""

    dialect: str
    passed: int
    failures: tuple[str, ...]


def slug(text: str, limit: int = 80) -> str:
    """A decoder id from free text: lower case, digits and dashes."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return cleaned[:limit].rstrip("-") or "decoder"


def check_id(decoder_id: str) -> None:
    if not _ID.match(decoder_id):
        raise RegistryError("a decoder id is 1-80 lower-case letters, digits and dashes, starting with one of the "
                            f"first two, got {decoder_id!r}")
    if catalog.get(decoder_id) is not None:
        raise RegistryError(f"{decoder_id!r} is a built-in decoder; choose another id")


def examples_from(raw: Sequence[Any]) -> list[dict[str, Any]]:
    """TTN-style examples (``{description, input: {fPort, bytes}, output: {data | errors}}``), checked for
    shape and count before any code runs; RegistryError says which one is wrong."""
    if len(raw) > MAX_EXAMPLES:
        raise RegistryError(f"at most {MAX_EXAMPLES} examples per decoder, got {len(raw)}")
    try:
        parse_examples(raw)
    except ValueError as exc:
        raise RegistryError(str(exc)) from None
    return [dict(item) for item in raw]


class TrialBusy(Exception):
    """Every trial slot is taken and enough requests wait already: answer 503 with Retry-After."""


class TrialRunner:
    """API trials in their own worker process, one at a time, at most ``max_waiting`` waiting, each stopped
    after ``deadline_s``; the worker stops itself after ``idle_s`` without trials."""

    def __init__(self, max_waiting: int = 4, deadline_s: float = TRIAL_DEADLINE_S, idle_s: float = 60.0) -> None:
        self.max_waiting = max_waiting
        self.deadline_s = deadline_s
        self.idle_s = idle_s
        self._worker = WorkerProcess()
        self._lock = asyncio.Lock()
        self._queued = 0
        self._idle: asyncio.TimerHandle | None = None

    @property
    def full(self) -> bool:
        """A trial now would be refused (:class:`TrialBusy`)."""
        return self._queued > self.max_waiting

    async def check(self, source: str, dialect: str | None, timeout_ms: int, examples: Sequence[Any]) -> Checked:
        """Compile and run the examples; RegistryError when it does not compile or takes too long."""
        try:
            answer = await self._run({"op": "check", "s": [source, dialect, timeout_ms], "examples": list(examples)})
        except WorkerTimeout:
            raise RegistryError(f"checking the decoder and its {len(examples)} examples took longer than "
                                f"{self.deadline_s:g} s and was stopped: make it faster or give fewer examples"
                                ) from None
        except WorkerLost as exc:
            raise RegistryError(f"checking the decoder stopped its worker ({exc}); it may need too much memory"
                                ) from None
        if "error" in answer:
            raise RegistryError(str(answer["error"]))
        return Checked(str(answer["dialect"]), int(answer["passed"]), tuple(answer["failures"]))

    async def try_codec(self, source: str, dialect: str | None, timeout_ms: int, payload: bytes, fport: int | None,
                        variables: dict[str, str]) -> dict[str, Any]:
        """Decode once: ``{data, measurements, warnings, errors}``; a trial stopped at the deadline is an error."""
        message = {"op": "try", "s": [source, dialect, timeout_ms], "p": base64.b64encode(payload).decode(),
                   "f": fport, "v": variables}
        try:
            answer: dict[str, Any] = await self._run(message)
        except WorkerLost as exc:
            why = (f"the trial took longer than {self.deadline_s:g} s and was stopped"
                   if isinstance(exc, WorkerTimeout) else f"the trial stopped its worker ({exc})")
            return {"data": {}, "measurements": [], "warnings": [], "errors": [why]}
        if "error" in answer:
            return {"data": {}, "measurements": [], "warnings": [], "errors": [str(answer["error"])]}
        return answer

    async def preview(self, source: str, dialect: str | None, timeout_ms: int,
                      uplinks: Sequence[tuple[bytes, int | None]]) -> list[dict[str, Any]]:
        """Decode stored uplinks with a candidate, in one trial: one ``{data, measurements, warnings, errors}``
        per uplink; RegistryError when it does not compile, or stops its worker or the deadline."""
        message = {"op": "preview", "s": [source, dialect, timeout_ms],
                   "u": [[base64.b64encode(payload).decode(), fport] for payload, fport in uplinks]}
        try:
            answer: dict[str, Any] = await self._run(message)
        except WorkerTimeout:
            raise RegistryError(f"decoding {len(uplinks)} stored uplinks took longer than {self.deadline_s:g} s and"
                                " was stopped: make the decoder faster or preview fewer") from None
        except WorkerLost as exc:
            raise RegistryError(f"the preview stopped its worker ({exc}); it may need too much memory") from None
        if "error" in answer:
            raise RegistryError(str(answer["error"]))
        return list(answer["results"])

    async def _run(self, message: dict[str, Any]) -> Any:
        if self.full:
            raise TrialBusy
        self._queued += 1
        try:
            async with self._lock:
                if self._idle is not None:
                    self._idle.cancel()
                try:
                    return await asyncio.to_thread(self._worker.request, message, self.deadline_s)
                finally:
                    self._idle = asyncio.get_running_loop().call_later(self.idle_s, self._stop_idle)
        finally:
            self._queued -= 1

    def _stop_idle(self) -> None:
        self._idle = None
        asyncio.get_running_loop().run_in_executor(None, self._worker.close)

    def close(self) -> None:
        """Stop the worker now (it holds nothing)."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        self._worker.close()


async def take_trial(conn: asyncpg.Connection, bucket: str, burst: float = TRIAL_BURST,
                     per_s: float = TRIAL_PER_S) -> float | None:
    """Spend one trial token of ``bucket``: None when there was one, else the seconds until there is.
    One atomic statement, so every instance shares the bucket and concurrent trials cannot overspend it."""
    left = await conn.fetchval(
        "INSERT INTO trial_limits AS t (bucket, tokens, updated_at) VALUES ($1, $2::float8 - 1, now())"
        " ON CONFLICT (bucket) DO UPDATE SET"
        " tokens = LEAST($2::float8, t.tokens + EXTRACT(EPOCH FROM now() - t.updated_at)::float8 * $3::float8) - 1,"
        " updated_at = now()"
        " WHERE LEAST($2::float8, t.tokens + EXTRACT(EPOCH FROM now() - t.updated_at)::float8 * $3::float8) >= 1"
        " RETURNING tokens", bucket, float(burst), float(per_s))
    if left is not None:
        return None
    wait = await conn.fetchval(
        "SELECT (1 - LEAST($2::float8, tokens + EXTRACT(EPOCH FROM now() - updated_at)::float8 * $3::float8))"
        " / $3::float8 FROM trial_limits WHERE bucket = $1", bucket, float(burst), float(per_s))
    return max(0.0, float(wait or 0.0))


async def upsert(conn: asyncpg.Connection, *, decoder_id: str, organization_id: str | None, source: str,
                 dialect: str, examples: Sequence[Any], timeout_ms: int = 100, vendor: str = "", model: str = "",
                 description: str = "", origin: str = "api") -> tuple[bool, int]:
    """Insert or replace (same owner only); returns (created, version). RegistryError when another owner has it."""
    row = await conn.fetchrow("SELECT organization_id, version, source, dialect FROM js_decoders WHERE id = $1"
                              " FOR UPDATE", decoder_id)
    if row is None:
        await conn.execute(
            "INSERT INTO js_decoders (id, organization_id, vendor, model, description, dialect, source, examples,"
            " timeout_ms, origin) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            decoder_id, organization_id, vendor, model, description, dialect, source, list(examples), timeout_ms,
            origin)
        return True, 1
    owner = str(row["organization_id"]) if row["organization_id"] is not None else None
    if owner != organization_id:
        raise RegistryError(f"the decoder id {decoder_id!r} is taken")
    if row["source"] == source and row["dialect"] == dialect:
        return False, int(row["version"])
    version = await conn.fetchval(
        "UPDATE js_decoders SET vendor = $2, model = $3, description = $4, dialect = $5, source = $6, examples = $7,"
        " timeout_ms = $8, origin = $9, version = version + 1, updated_at = now() WHERE id = $1 RETURNING version",
        decoder_id, vendor, model, description, dialect, source, list(examples), timeout_ms, origin)
    return False, int(version)
