"""Read a checkout of ChirpStack's device-profile repository (chirpstack/chirpstack-device-profiles).

Layout (its README, "Structure")::

    vendors/<vendor>/vendor.toml                   [vendor] name = "..."
    vendors/<vendor>/devices/<device>.toml         [device] name; [[device.firmware]] codec = "<codec>.js"
    vendors/<vendor>/codecs/<codec>.js             a ChirpStack v4 codec (decodeUplink/encodeDownlink)
    vendors/<vendor>/codecs/test_decode_<codec>.json   [{name, input: {fPort, bytes, ...}, expected}]
    vendors/<vendor>/codecs/test_encode_<codec>.json   [{name, input: {data}, expected: {bytes, fPort}}]

The test files are not strict JSON: ChirpStack's runner pastes them into a script (``const tests =
...;``), and they use hex numbers and ``//`` comments. They are evaluated here the same way, as a
JavaScript expression in a bare sandboxed context with tight limits. Every codec file is returned,
with the names of the devices that use it (none is fine); unreadable parts set ``problem``.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import quickjs

from decoders.js.dialects import Dialect
from decoders.js.examples import CodecExample, examples_in
from decoders.js.spec import CodecSpec

TEST_KINDS = (("test_decode_", "decodeUplink"), ("test_encode_", "encodeDownlink"))


def parse_js_literal(text: str, *, time_limit_s: float = 1.0, memory_bytes: int = 16 * 1024 * 1024) -> Any:
    """The value of a JavaScript expression made of literals (JSON plus hex, comments, trailing commas).

    Evaluated in a fresh QuickJS context with a time and memory limit and no host access; ValueError
    when it does not evaluate or is not JSON-representable.
    """
    if not text.strip():
        return []
    if "\x00" in text:
        raise ValueError("the text contains a NUL character")
    ctx = quickjs.Context()
    ctx.set_time_limit(time_limit_s)
    ctx.set_memory_limit(memory_bytes)
    try:
        encoded = ctx.eval(f"JSON.stringify((\n{text}\n))")
    except quickjs.JSException as exc:
        raise ValueError(str(exc).strip().splitlines()[0]) from None
    if not isinstance(encoded, str):
        raise ValueError("the expression has no JSON value")
    return json.loads(encoded)


def _toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        return tomllib.load(handle)


def _vendor_name(vendor_dir: Path) -> str:
    try:
        vendor = _toml(vendor_dir / "vendor.toml").get("vendor", {})
    except (OSError, tomllib.TOMLDecodeError):
        return vendor_dir.name
    return str(vendor.get("name") or vendor_dir.name) if isinstance(vendor, Mapping) else vendor_dir.name


def _devices_by_codec(vendor_dir: Path) -> dict[str, list[str]]:
    """Codec file name -> names of the devices whose firmware versions use it."""
    found: dict[str, list[str]] = {}
    for path in sorted((vendor_dir / "devices").glob("*.toml")):
        try:
            device = _toml(path).get("device", {})
        except (OSError, tomllib.TOMLDecodeError):
            continue
        if not isinstance(device, Mapping):
            continue
        name = str(device.get("name") or path.stem)
        for firmware in device.get("firmware") or ():
            codec = firmware.get("codec") if isinstance(firmware, Mapping) else None
            if codec and name not in found.setdefault(str(codec), []):
                found[str(codec)].append(name)
    return found


def _examples(codecs_dir: Path, stem: str) -> tuple[CodecExample, ...]:
    examples: list[CodecExample] = []
    for prefix, routine in TEST_KINDS:
        path = codecs_dir / f"{prefix}{stem}.json"
        if not path.is_file():
            continue
        try:
            tests = parse_js_literal(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ValueError(f"{path.name}: {exc}") from None
        if not isinstance(tests, list):
            raise ValueError(f"{path.name} is not a list of tests")
        examples += examples_in(tests, routine, f"{path.name} test")
    return tuple(examples)


def scan_chirpstack_repository(path: str | Path) -> list[CodecSpec]:
    """Every codec of a chirpstack-device-profiles checkout, sorted by vendor and codec id."""
    specs: list[CodecSpec] = []
    vendors = Path(path) / "vendors"
    for vendor_dir in sorted(p for p in vendors.iterdir() if p.is_dir()) if vendors.is_dir() else ():
        vendor_name = _vendor_name(vendor_dir)
        devices = _devices_by_codec(vendor_dir)
        codecs_dir = vendor_dir / "codecs"
        for js_path in sorted(codecs_dir.glob("*.js")):
            stem, users = js_path.stem, tuple(devices.get(js_path.name, ()))
            source, problem = "", None
            examples: tuple[CodecExample, ...] = ()
            try:
                source = js_path.read_text(encoding="utf-8")
                examples = _examples(codecs_dir, stem)
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                problem = f"cannot read {js_path.name} or its tests: {exc}"
            specs.append(
                CodecSpec(
                    "chirpstack",
                    vendor_dir.name,
                    stem,
                    users,
                    source,
                    Dialect.CHIRPSTACK_V4,
                    examples,
                    str(js_path),
                    problem,
                    vendor_name,
                )
            )
    return specs
