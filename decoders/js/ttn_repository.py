"""Read a checkout of The Things Network's device repository (TheThingsNetwork/lorawan-devices).

Layout (as its ``bin/validate.js`` walks it)::

    vendor/index.yaml                 vendors: [{id, name, ...}]
    vendor/<vendor>/index.yaml        endDevices: [<device id>, ...]
    vendor/<vendor>/<device>.yaml     name, firmwareVersions[].profiles.<region>.codec: <codec id>
    vendor/<vendor>/<codec id>.yaml   uplinkDecoder: {fileName, examples}, downlinkEncoder, downlinkDecoder
    vendor/<vendor>/<fileName>        the JavaScript

Only codecs some device refers to and that have an ``uplinkDecoder`` are returned. Examples of
``downlinkEncoder``/``downlinkDecoder`` come along when they use the same script. A codec whose YAML,
script or examples cannot be read is returned with ``problem`` set, so the report shows it.
Needs PyYAML (imported on first use).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from decoders.js.dialects import Dialect
from decoders.js.examples import CodecExample, examples_in
from decoders.js.spec import CodecSpec

SECTIONS = (
    ("uplinkDecoder", "decodeUplink"),
    ("downlinkEncoder", "encodeDownlink"),
    ("downlinkDecoder", "decodeDownlink"),
)


def _load(path: Path) -> Any:
    try:
        from decoders.js.yaml12 import load_yaml
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("reading the TTN device repository needs PyYAML (pip install pyyaml)") from exc
    return load_yaml(path)


def _vendor_names(root: Path) -> dict[str, str]:
    index = root / "vendor" / "index.yaml"
    try:
        doc = _load(index) if index.is_file() else None
    except Exception:
        return {}
    vendors = doc.get("vendors") if isinstance(doc, Mapping) else None
    return {str(v["id"]): str(v.get("name") or v["id"]) for v in vendors or () if isinstance(v, Mapping) and "id" in v}


def _device_ids(vendor_dir: Path) -> list[str]:
    index = vendor_dir / "index.yaml"
    try:
        doc = _load(index) if index.is_file() else None
    except Exception:
        doc = None
    if isinstance(doc, Mapping) and isinstance(doc.get("endDevices"), list):
        return [str(d) for d in doc["endDevices"]]
    return sorted(p.stem for p in vendor_dir.glob("*.yaml") if p.stem != "index")


def _codecs_of_devices(vendor_dir: Path) -> dict[str, list[str]]:
    """Codec id -> names of the devices (any firmware, any region) that use it."""
    codecs: dict[str, list[str]] = {}
    for device_id in _device_ids(vendor_dir):
        path = vendor_dir / f"{device_id}.yaml"
        try:
            doc = _load(path)
        except Exception:
            continue
        if not isinstance(doc, Mapping) or not isinstance(doc.get("firmwareVersions"), list):
            continue
        name = str(doc.get("name") or device_id)
        for firmware in doc["firmwareVersions"]:
            profiles = firmware.get("profiles") if isinstance(firmware, Mapping) else None
            for profile in (profiles or {}).values() if isinstance(profiles, Mapping) else ():
                codec = profile.get("codec") if isinstance(profile, Mapping) else None
                if codec and name not in codecs.setdefault(str(codec), []):
                    codecs[str(codec)].append(name)
    return codecs


def _examples(doc: Mapping[str, Any], file_name: str) -> tuple[CodecExample, ...]:
    examples: list[CodecExample] = []
    for section, routine in SECTIONS:
        part = doc.get(section)
        if not isinstance(part, Mapping) or part.get("fileName") != file_name:
            continue
        examples += examples_in(part.get("examples") or (), routine, f"{section} example")
    return tuple(examples)


def _codec_spec(vendor_dir: Path, vendor_name: str, codec_id: str, devices: list[str]) -> CodecSpec | None:
    path, vendor = vendor_dir / f"{codec_id}.yaml", vendor_dir.name

    def broken(problem: str, source: str = "", js_path: str = "") -> CodecSpec:
        return CodecSpec(
            "ttn", vendor, codec_id, tuple(devices), source, Dialect.TTN, (), js_path or str(path), problem, vendor_name
        )

    try:
        doc = _load(path)
    except Exception as exc:
        return broken(f"cannot read {path.name}: {exc}")
    uplink = doc.get("uplinkDecoder") if isinstance(doc, Mapping) else None
    if not isinstance(uplink, Mapping):
        return None
    file_name = str(uplink.get("fileName") or "")
    js_path = vendor_dir / file_name
    try:
        source = js_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return broken(f"cannot read the script {file_name!r}: {exc}")
    try:
        examples = _examples(doc, file_name)
    except ValueError as exc:
        return broken(f"{path.name}: {exc}", source, str(js_path))
    return CodecSpec(
        "ttn", vendor, codec_id, tuple(devices), source, Dialect.TTN, examples, str(js_path), None, vendor_name
    )


def scan_ttn_repository(path: str | Path) -> list[CodecSpec]:
    """Every codec of a lorawan-devices checkout, sorted by vendor and codec id."""
    root = Path(path)
    names = _vendor_names(root)
    specs: list[CodecSpec] = []
    vendor_root = root / "vendor"
    for vendor_dir in sorted(p for p in vendor_root.iterdir() if p.is_dir()) if vendor_root.is_dir() else ():
        vendor_name = names.get(vendor_dir.name, vendor_dir.name)
        for codec_id, devices in sorted(_codecs_of_devices(vendor_dir).items()):
            spec = _codec_spec(vendor_dir, vendor_name, codec_id, devices)
            if spec is not None:
                specs.append(spec)
    return specs
