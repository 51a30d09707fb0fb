"""``iotd decoders import-ttn PATH`` and ``import-chirpstack PATH``: register a public codec collection.

Every codec is compiled and its examples run (a progress bar shows the work); the report says per
codec PASS, FAIL or UNTESTED (it compiles but has no example, so nothing about its output is known).
Numbers compare within a tolerance and a ``normalizedOutput`` that differs is a warning, counted apart
(``decoders.js.examples``). Codecs whose examples all pass, and untested ones, are stored as
JavaScript decoders (``--include-failing`` stores failing ones too; ``--strict`` refuses untested ones
and exits 1 when any codec failed or is untested), directly in the database (``IOTD_DATABASE_URL``),
with the audit log naming the command line. Re-running updates changed codecs only.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from decoders.js.spec import CodecReport, CodecSpec, run_codec_examples


def _scan(kind: str) -> Callable[[Path], list[CodecSpec]]:
    if kind == "ttn":
        from decoders.js.ttn_repository import scan_ttn_repository

        return scan_ttn_repository
    from decoders.js.chirpstack_repository import scan_chirpstack_repository

    return scan_chirpstack_repository


def decoder_id(prefix: str, spec: CodecSpec) -> str:
    from registry.js_store import slug

    return slug(f"{prefix}{spec.vendor}-{spec.codec_id}")


def cmd_import(args: argparse.Namespace) -> int:
    root = Path(args.path)
    if not root.is_dir():
        raise SystemExit(f"iotd decoders {args.command_name}: {root} is not a directory")
    specs = _scan(args.kind)(root)
    if not specs:
        raise SystemExit(f"iotd decoders {args.command_name}: no codecs found under {root} (is it a checkout of the "
                         f"{'lorawan-devices' if args.kind == 'ttn' else 'chirpstack-device-profiles'} repository?)")
    reports: list[tuple[CodecSpec, CodecReport]] = []
    for spec in tqdm(specs, desc="running codec examples", unit="codec", disable=not sys.stderr.isatty()):
        reports.append((spec, run_codec_examples(spec)))
    for _, report in reports:
        print(report_line(report))
        for message in report.messages[:3]:
            print(f"     {message}")
        for warning in report.warnings[:3]:
            print(f"     warning: {warning}")
    chosen = [(s, r) for s, r in reports if s.problem is None and (r.ok or args.include_failing)
              and (r.tested or not args.strict)]
    print(summary_line([r for _, r in reports]))
    untested = sum(1 for _, r in reports if r.status == "UNTESTED")
    if args.strict and untested:
        print(f"--strict: {untested} untested codecs are not registered")
    refused = 1 if args.strict and any(r.status != "PASS" for _, r in reports) else 0
    if args.dry_run:
        print(f"dry run: would register {len(chosen)} decoders")
        return refused
    from distributor.settings import Settings

    url = Settings().database_url
    if not url:
        raise SystemExit(f"iotd decoders {args.command_name}: IOTD_DATABASE_URL is not set (or use --dry-run)")
    created, updated = asyncio.run(_store(url, chosen, args.prefix, args.organization))
    print(f"registered: {created} new, {updated} updated, {len(chosen) - created - updated} unchanged")
    return refused


def report_line(report: CodecReport) -> str:
    """One codec's line: ``PASS key (2 passed, 0 failed)``, ``UNTESTED key (no examples)``, ..."""
    if report.status == "UNTESTED":
        return f"UNTESTED {report.key} (no examples: it compiles, its output is unchecked)"
    line = f"{report.status} {report.key} ({report.passed} passed, {report.failed} failed"
    if report.normalized_mismatches:
        line += f"; {report.normalized_mismatches} normalizedOutput mismatches"
    return line + ")"


def summary_line(reports: list[CodecReport]) -> str:
    """The counts under the report: passing, failing, untested, and normalizedOutput warnings."""
    counts = {status: sum(1 for r in reports if r.status == status) for status in ("PASS", "FAIL", "UNTESTED")}
    line = (f"{len(reports)} codecs: {counts['PASS']} pass their examples, {counts['FAIL']} do not, "
            f"{counts['UNTESTED']} have none (untested)")
    warned = sum(1 for r in reports if r.normalized_mismatches)
    if warned:
        line += f"; {warned} with normalizedOutput mismatches (warnings)"
    return line


async def _store(url: str, chosen: list[tuple[CodecSpec, CodecReport]], prefix: str,
                 organization: str | None) -> tuple[int, int]:
    from registry import audit
    from registry.db import create_pool, migrate
    from registry.js_store import upsert
    from registry.store import RegistryError

    created = updated = 0
    pool = await create_pool(url)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            async with conn.transaction():
                for spec, _ in tqdm(chosen, desc="registering", unit="codec", disable=not sys.stderr.isatty()):
                    did = decoder_id(prefix, spec)
                    examples = [{"description": e.description, "routine": e.routine, "input": dict(e.input),
                                 "output": dict(e.output)} for e in spec.examples]
                    try:
                        new, version = await upsert(
                            conn, decoder_id=did, organization_id=organization, source=spec.source,
                            dialect=str(spec.dialect), examples=examples, vendor=spec.vendor_name or spec.vendor,
                            model=", ".join(spec.devices)[:200], description=f"imported from {spec.key}",
                            origin=spec.path)
                    except RegistryError as exc:
                        print(f"skipped {did}: {exc}")
                        continue
                    created += new
                    updated += (not new) and version > 1
                await audit.record(conn, actor="cli", actor_key_id=None, action="import", resource="decoders",
                                   resource_id=None, organization_id=organization,
                                   after={"codecs": len(chosen), "created": created, "updated": updated})
    finally:
        await pool.close()
    return created, updated


def register(dsub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, kind, repo, prefix in (("import-ttn", "ttn", "TheThingsNetwork/lorawan-devices", "ttn-"),
                                     ("import-chirpstack", "chirpstack", "chirpstack/chirpstack-device-profiles",
                                      "cs-")):
        p = dsub.add_parser(name, help=f"register the codecs of a {repo} checkout, running their examples",
                            description=f"Scan a checkout of {repo}, run every codec's examples in the sandbox and "
                                        "register the codecs that pass as JavaScript decoders.")
        p.add_argument("path", help="the repository checkout")
        p.add_argument("--organization", metavar="ID", help="owner organization (default: shared with all)")
        p.add_argument("--prefix", default=prefix, help=f"decoder id prefix (default {prefix!r})")
        p.add_argument("--include-failing", action="store_true", help="register codecs whose examples fail too")
        p.add_argument("--dry-run", action="store_true", help="run the examples and report; store nothing")
        p.add_argument("--strict", action="store_true",
                       help="register no untested codec (one without examples); exit 1 when any codec fails its "
                            "examples or is untested")
        p.set_defaults(func=cmd_import, kind=kind, command_name=name)
