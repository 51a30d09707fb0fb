"""Importing parsed CSV rows: an idempotent upsert of many devices in a few statements per chunk.

A row finds its stored device by ``dev_eui`` (lorawan), else by ``imei`` (nbiot, or any device
that has one), else by application, kind and name (http/mqtt devices without an imei). Then:

* no such device: insert it (audit "create") into the row's ``application_id`` or else the default
  application (the default is only for new devices);
* one in the caller's organization: update the fields the file gives that differ (version + 1,
  audit "update"), or report it unchanged. Columns the file leaves out, and an empty app_key,
  keep their stored values; the kind and the application never change (a row naming another
  application is an error, not a move);
* one in another organization than the key's: the row is refused with the same text a duplicate
  gets from ``POST /devices`` ("dev_eui is already registered"), naming the field and not the
  value, so the answer tells no more than that the identifier is taken. A global key whose row
  names an application in another organization than the device's is told so (it sees both).

New nbiot/http/mqtt devices get an ingest key, returned once in the row's result (like
``POST /devices``); ``POST /devices/{id}/rotate-ingest-key`` issues a new one later.

Per chunk of rows: one to three ``SELECT ... FOR UPDATE`` for the stored devices, one COPY for the
new ones, one ``UPDATE ... FROM unnest(...)`` for the changed ones, one SELECT of the results and
one COPY into the audit log. The caller owns the transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import asyncpg

from registry.api.auth import Principal
from registry.api.devices import _EDITABLE, DEVICES, device_shown
from registry.audit import mask
from registry.device_csv import STATUSES, ParsedRow, RowResult
from registry.device_rules import KEYED_KINDS, clean_device
from registry.secrets import SecretBox, hash_token, new_token
from registry.store import RegistryError

CHUNK = 5_000
DecoderExists = Callable[[str, str], bool]          # (decoder id, organization id) -> usable
_INSERT_COLUMNS = ("id", "application_id", "name", "kind", "decoder", "dev_eui", "join_eui", "app_key_enc", "imei",
                   "imsi", "ingest_key_hash", "tags", "lat", "lon", "interval_s", "metadata")
_AUDIT_COLUMNS = ("organization_id", "actor_key_id", "actor", "action", "resource", "resource_id", "before", "after")
_SQL_TYPES = {"name": "text", "decoder": "text", "dev_eui": "text", "join_eui": "text", "imei": "text",
              "imsi": "text", "tags": "jsonb", "lat": "float8", "lon": "float8", "interval_s": "int4",
              "metadata": "jsonb"}
_EMPTY_IS: dict[str, dict[str, Any]] = {"tags": {}, "metadata": {}}


@dataclass
class ImportReport:
    rows: list[RowResult]

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r.status == status)

    def without_keys(self) -> ImportReport:
        """The report of a dry run: nothing was stored, so no ingest key is valid."""
        return ImportReport([replace(r, ingest_key=None) if r.ingest_key else r for r in self.rows])

    def as_dict(self) -> dict[str, Any]:
        counts = {("errors" if s == "error" else s): self.count(s) for s in STATUSES}
        return {**counts, "rows": [r.as_dict() for r in self.rows]}


@dataclass
class _Batch:
    """One chunk's decisions before they are written."""

    inserts: list[tuple[int, dict[str, Any]]] = field(default_factory=list)      # (index, row to insert)
    updates: list[tuple[int, dict[str, Any], dict[str, Any], bytes | None]] = field(default_factory=list)
    orgs: dict[str, str] = field(default_factory=dict)                           # device id -> organization


async def import_devices(conn: asyncpg.Connection, box: SecretBox, who: Principal,
                         rows: Sequence[RowResult | ParsedRow], default_application_id: str | None,
                         decoder_exists: DecoderExists) -> ImportReport:
    """Upsert ``rows`` (from ``parse_rows``); one result per row, in order. Run it inside a transaction."""
    results: list[RowResult | None] = [r if isinstance(r, RowResult) else None for r in rows]
    parsed = [(i, r) for i, r in enumerate(rows) if isinstance(r, ParsedRow)]
    wanted = {r.fields.get("application_id") for _, r in parsed} | {default_application_id}
    apps = await _visible_applications(conn, who, {a for a in wanted if a})
    seen: dict[tuple[str, str], int] = {}
    for start in range(0, len(parsed), CHUNK):
        chunk = parsed[start:start + CHUNK]
        await _import_chunk(conn, box, who, chunk, apps, default_application_id, decoder_exists, seen, results)
    done = [r for r in results if r is not None]
    assert len(done) == len(rows), "every row has a result"
    return ImportReport(done)


async def _visible_applications(conn: asyncpg.Connection, who: Principal, ids: set[str]) -> dict[str, str]:
    """application id -> organization id, for the applications this key may see."""
    found = await conn.fetch("SELECT id::text, organization_id::text FROM applications WHERE id = ANY($1::uuid[])",
                             sorted(ids))
    return {r["id"]: r["organization_id"] for r in found if who.sees(r["organization_id"])}


def _identity(fields: dict[str, Any], application_id: str | None) -> tuple[str, str] | None:
    if fields["kind"] == "lorawan":
        return "dev_eui", fields["dev_eui"]
    if fields.get("imei"):
        return "imei", fields["imei"]
    if application_id is None:
        return None
    return "name", f"{application_id}/{fields['kind']}/{fields['name']}"


def _describe(identity: tuple[str, str], fields: dict[str, Any]) -> str:
    what, value = identity
    return f"{what} {value}" if what != "name" else f"the {fields['kind']} device named {fields['name']!r}"


def _taken(identity: tuple[str, str]) -> str:
    """The uniform refusal for an identifier stored outside the caller's organization (as errors.py's 409)."""
    what, _ = identity
    return f"{what} is already registered" if what != "name" else "the name is already registered"


async def _import_chunk(conn: asyncpg.Connection, box: SecretBox, who: Principal,
                        chunk: list[tuple[int, ParsedRow]], apps: dict[str, str], default_app: str | None,
                        decoder_exists: DecoderExists, seen: dict[tuple[str, str], int],
                        results: list[RowResult | None]) -> None:
    candidates: list[tuple[int, ParsedRow, tuple[str, str]]] = []
    for i, row in chunk:
        explicit = row.fields.get("application_id")
        if explicit and explicit not in apps:
            results[i] = RowResult(row.line, "error", reason="application not found")
            continue
        identity = _identity(row.fields, explicit or default_app)
        if identity is None:
            results[i] = RowResult(row.line, "error", reason="application_id is empty and no default application"
                                                             " was given")
        elif identity in seen:
            results[i] = RowResult(row.line, "error", reason=f"{_describe(identity, row.fields)} is also on line"
                                                             f" {seen[identity]}")
        else:
            seen[identity] = row.line
            candidates.append((i, row, identity))
    stored = await _stored_devices(conn, [c[2] for c in candidates])
    batch = _Batch()
    for i, row, identity in candidates:
        try:
            results[i] = _decide(box, who, row, identity, stored.get(identity, []), apps, default_app,
                                 decoder_exists, batch, i)
        except RegistryError as exc:
            results[i] = RowResult(row.line, "error", reason=str(exc))
    await _write(conn, box, who, batch, results)


async def _stored_devices(conn: asyncpg.Connection, identities: list[tuple[str, str]]
                          ) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The stored devices for these identities, locked for the rest of the transaction."""
    select = f"SELECT {DEVICES.columns}, t.app_key_enc FROM devices t"
    by_kind: dict[str, list[str]] = {"dev_eui": [], "imei": [], "name": []}
    for what, value in identities:
        by_kind[what].append(value)
    found: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def keep(what: str, records: list[asyncpg.Record]) -> None:
        for rec in records:
            row = dict(rec)
            key = row[what] if what != "name" else f"{row['application_id']}/{row['kind']}/{row['name']}"
            found.setdefault((what, key), []).append(row)

    for what in ("dev_eui", "imei"):
        if by_kind[what]:
            keep(what, await conn.fetch(f"{select} WHERE t.{what} = ANY($1::text[]) FOR UPDATE OF t", by_kind[what]))
    if by_kind["name"]:
        apps, kinds, names = zip(*(v.split("/", 2) for v in by_kind["name"]), strict=True)
        keep("name", await conn.fetch(
            f"{select} WHERE (t.application_id, t.kind, t.name) IN"
            " (SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[])) FOR UPDATE OF t",
            list(apps), list(kinds), list(names)))
    return found


def _decide(box: SecretBox, who: Principal, row: ParsedRow, identity: tuple[str, str],
            stored: list[dict[str, Any]], apps: dict[str, str], default_app: str | None,
            decoder_exists: DecoderExists, batch: _Batch, index: int) -> RowResult:
    """The row's outcome; inserts and updates are queued in ``batch``. Raises ``RegistryError`` to refuse."""
    fields = row.fields
    explicit = fields.get("application_id")
    if len(stored) > 1:
        raise RegistryError(f"{len(stored)} {fields['kind']} devices are named {fields['name']!r} in this"
                            " application; edit them through the API")
    if not stored:
        application_id = explicit or default_app
        if application_id is None or application_id not in apps:
            raise RegistryError("application not found")
        org = apps[application_id]
        _check_decoder(fields.get("decoder"), org, decoder_exists)
        new = _new_device(box, fields, application_id)
        batch.inserts.append((index, new))
        batch.orgs[new["id"]] = org
        return RowResult(row.line, "created", new["id"], ingest_key=new.pop("ingest_key"))
    current = stored[0]
    org = str(current["organization_id"])
    target = explicit or default_app
    if not who.sees(org):
        raise RegistryError(_taken(identity))
    if target is not None and apps.get(target, org) != org:
        raise RegistryError(f"{_describe(identity, fields)} is in another organization than the row's application;"
                            " import does not move devices between organizations")
    device_id = str(current["id"])
    if current["kind"] != fields["kind"]:
        raise RegistryError(f"{_describe(identity, fields)} is a {current['kind']} device; import does not change"
                            " a device's kind")
    if explicit and explicit != str(current["application_id"]):
        raise RegistryError(f"{_describe(identity, fields)} is in application {current['application_id']};"
                            " import does not move devices between applications")
    merged = clean_device({"kind": current["kind"], **{k: current[k] for k in _EDITABLE},
                           **{k: v for k, v in fields.items() if k in _EDITABLE}})
    changed = [k for k in _EDITABLE if merged[k] != current[k] and not _both_empty(k, merged[k], current[k])]
    if "decoder" in changed:
        _check_decoder(merged["decoder"], org, decoder_exists)
    app_key_enc = None
    if fields.get("app_key") and _stored_key(box, current["app_key_enc"]) != fields["app_key"]:
        app_key_enc = box.encrypt(fields["app_key"])
    if not changed and app_key_enc is None:
        return RowResult(row.line, "unchanged", device_id)
    batch.updates.append((index, current, merged, app_key_enc))
    batch.orgs[device_id] = org
    return RowResult(row.line, "updated", device_id)


def _stored_key(box: SecretBox, encrypted: bytes | None) -> str | None:
    """The stored app_key, or None when there is none or it cannot be decrypted (then a given key replaces it)."""
    if encrypted is None:
        return None
    try:
        return box.decrypt(encrypted)
    except ValueError:
        return None


def _both_empty(column: str, a: Any, b: Any) -> bool:
    empty = _EMPTY_IS.get(column)
    return empty is not None and (a or empty) == (b or empty)


def _check_decoder(decoder: str | None, org: str, decoder_exists: DecoderExists) -> None:
    if decoder and not decoder_exists(decoder, org):
        raise RegistryError(f"no decoder {decoder!r}; see GET /api/v1/decoders")


def _new_device(box: SecretBox, fields: dict[str, Any], application_id: str) -> dict[str, Any]:
    """The values of a new device's columns (as ``insert_device`` would store them), plus its ingest key."""
    ingest_key = new_token("iotd_ik") if fields["kind"] in KEYED_KINDS else None
    app_key = fields.get("app_key")
    return {"id": str(uuid.uuid4()), "application_id": application_id, "name": fields["name"],
            "kind": fields["kind"], "decoder": fields.get("decoder"), "dev_eui": fields.get("dev_eui"),
            "join_eui": fields.get("join_eui"), "app_key_enc": box.encrypt(app_key) if app_key else None,
            "imei": fields.get("imei"), "imsi": fields.get("imsi"),
            "ingest_key_hash": hash_token(ingest_key) if ingest_key else None, "tags": fields.get("tags") or {},
            "lat": fields.get("lat"), "lon": fields.get("lon"), "interval_s": fields.get("interval_s"),
            "metadata": fields.get("metadata") or {}, "ingest_key": ingest_key}


async def _write(conn: asyncpg.Connection, box: SecretBox, who: Principal, batch: _Batch,
                 results: list[RowResult | None]) -> None:
    if batch.inserts:
        await conn.copy_records_to_table("devices", columns=_INSERT_COLUMNS, records=[
            tuple(new[c] for c in _INSERT_COLUMNS) for _, new in batch.inserts])
    if batch.updates:
        await _update(conn, batch)
    ids = [new["id"] for _, new in batch.inserts] + [str(cur["id"]) for _, cur, _, _ in batch.updates]
    if not ids:
        return
    after = {str(r["id"]): device_shown(dict(r)) for r in await conn.fetch(
        f"SELECT {DEVICES.columns} FROM devices t WHERE t.id = ANY($1::uuid[])", ids)}
    audit: list[tuple[str, str, str, dict[str, Any] | None, dict[str, Any]]] = [
        (batch.orgs[new["id"]], "create", new["id"], None, after[new["id"]]) for _, new in batch.inserts]
    audit += [(batch.orgs[str(cur["id"])], "update", str(cur["id"]), device_shown(cur), after[str(cur["id"])])
              for _, cur, _, _ in batch.updates]
    await conn.copy_records_to_table("audit_log", columns=_AUDIT_COLUMNS, records=[
        (org, who.key_id, who.actor, action, "device", device_id, mask(before) if before else None, mask(shown))
        for org, action, device_id, before, shown in audit])


async def _update(conn: asyncpg.Connection, batch: _Batch) -> None:
    """Every queued update in one statement: all editable columns from the merged values, version + 1."""
    columns = list(_EDITABLE)
    arrays: list[list[Any]] = [[str(cur["id"]) for _, cur, _, _ in batch.updates]]
    arrays += [[merged[c] for _, _, merged, _ in batch.updates] for c in columns]
    arrays.append([enc for _, _, _, enc in batch.updates])
    marks = ", ".join(f"${i + 2}::{_SQL_TYPES[c]}[]" for i, c in enumerate(columns))
    names = ", ".join(columns)
    sets = ", ".join(f"{c} = u.{c}" for c in columns)
    await conn.execute(
        f"UPDATE devices t SET {sets}, app_key_enc = COALESCE(u.app_key_enc, t.app_key_enc),"
        " version = t.version + 1, updated_at = now()"
        f" FROM unnest($1::uuid[], {marks}, ${len(columns) + 2}::bytea[]) AS u(id, {names}, app_key_enc)"
        " WHERE t.id = u.id", *arrays)
