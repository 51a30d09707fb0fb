"""The ``iotd`` command line: serve, demo, decode, schema, decoders."""

from __future__ import annotations

import argparse
import base64
import binascii
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import orjson

from decoders import catalog
from decoders.payload_text import from_hex


def _print_json(obj: object) -> None:
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n")


def _payload_from(args: argparse.Namespace) -> bytes:
    if args.hex is not None:
        try:
            return from_hex(args.hex)
        except ValueError as exc:
            raise SystemExit(f"iotd decode: {exc}") from None
    try:
        return base64.b64decode(args.base64, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise SystemExit(f"iotd decode: the payload is not valid base64: {exc}") from None


def cmd_decode(args: argparse.Namespace) -> int:
    if args.js is not None:
        return _decode_js(args)
    decoder = catalog.get(args.decoder)
    if decoder is None:
        known = ", ".join(sorted(catalog.load_all()))
        raise SystemExit(f"iotd decode: no decoder {args.decoder!r}; known: {known}")
    result = decoder.decode(_payload_from(args), args.fport)
    measurements = decoder.measure(result)
    _print_json(
        {
            "decoder": decoder.id,
            "data": result.data,
            "measurements": [m.as_dict() for m in measurements],
            "warnings": result.warnings,
            "errors": result.errors,
        }
    )
    return 0 if result.ok else 1


def _decode_js(args: argparse.Namespace) -> int:
    """A JavaScript codec from a file, in the same sandbox and with the same limits as in the service."""
    from decoders.js.trial import try_codec

    try:
        source = Path(args.js).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SystemExit(f"iotd decode: cannot read {args.js}: {exc}") from exc
    out = try_codec(source, args.dialect, args.timeout_ms, _payload_from(args), args.fport, {})
    _print_json({"decoder": args.js, **out})
    return 0 if not out["errors"] else 1


def cmd_schema(args: argparse.Namespace) -> int:
    from distributor.model import json_schema

    _print_json(json_schema())
    return 0


def cmd_decoders_list(args: argparse.Namespace) -> int:
    rows = [
        {"id": d.id, "vendor": d.device.vendor, "model": d.device.model, "protocols": list(d.device.protocols)}
        for d in catalog.load_all().values()
    ]
    if args.json:
        _print_json(rows)
    else:
        from distributor.cli_table import table_lines, terminal_width

        cells = [(str(r["id"]), str(r["vendor"]), str(r["model"])) for r in rows]
        for line in table_lines(("ID", "VENDOR", "MODEL"), cells, terminal_width()):
            print(line)
    return 0


def cmd_decoders_show(args: argparse.Namespace) -> int:
    d = catalog.get(args.id)
    if d is None:
        raise SystemExit(f"iotd decoders show: no decoder {args.id!r}")
    _print_json(
        {
            "id": d.id,
            "vendor": d.device.vendor,
            "model": d.device.model,
            "description": d.device.description,
            "protocols": list(d.device.protocols),
            "version": d.device.version,
            "measurements": list(d.measurements),
            "examples": [
                {"description": e.description, "fport": e.fport, "hex": e.payload_hex,
                 "data": e.data, "errors": list(e.errors)}
                for e in d.examples
            ],
        }
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iotd", description="IoT message distributor and device registry for cities."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("decode", help="decode one payload with a decoder and print the result as JSON")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--decoder", help="decoder id (see `iotd decoders list`)")
    which.add_argument("--js", metavar="FILE", help="a JavaScript codec file, run in the sandbox")
    p.add_argument("--dialect", choices=("ttn", "chirpstack-v4", "chirpstack-v3", "os2iot"),
                   help="with --js: the codec's dialect (default: detected)")
    p.add_argument("--timeout-ms", type=int, default=100, help="with --js: time limit per call (default 100)")
    p.add_argument("--fport", type=int, default=None, help="LoRaWAN fPort")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--hex", help="payload as hex")
    g.add_argument("--base64", help="payload as base64")
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("schema", help="print the JSON Schema of the iotd.message/1 data model")
    p.set_defaults(func=cmd_schema)

    dec = sub.add_parser("decoders", help="list and inspect decoders")
    dsub = dec.add_subparsers(dest="decoders_command", required=True, metavar="ACTION")
    p = dsub.add_parser("list", help="list the available decoders")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_decoders_list)
    p = dsub.add_parser("show", help="show a decoder's measurements and examples")
    p.add_argument("id")
    p.set_defaults(func=cmd_decoders_show)
    from distributor import cli_decoders

    cli_decoders.register(dsub)

    _add_service_commands(sub)
    return parser


def _add_service_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from distributor import cli_devices, commands

    commands.register(sub)
    cli_devices.register(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:   # Ctrl-C is how a user stops a command, not a crash: no traceback
        return 130
    except BrokenPipeError:     # `iotd decoders list | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # no second error at interpreter exit
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
