"""Requests generated from an OpenAPI document, for probing tenant isolation: every operation, with the
parameters that name an object filled from one tenant's objects or another's, and a minimal valid body.

Pure: no I/O. The isolation test (tests/registry/test_isolation_generated.py) reads ``/openapi.json`` from
the running service, so an endpoint added later is probed without anyone listing it here.

What gets filled, and from where (``Values``: parameter or field name -> that tenant's value):

* **slots**, the places that name an object: every path parameter, every query parameter or body field
  named ``*_id``, ``*_ids``, ``ids`` or ``decoder``, ``id`` at the top of a POST body to a collection
  (the client-chosen id of a new object: ``POST /decoders`` -> ``decoder_id``), and a ``text/csv`` body
  (``csv``). A slot whose name has no value fails with ``MissingName``, so a new endpoint cannot be
  skipped silently: the message says which name to add.
* the search parameter ``q`` gets the foreign tenant's ``q`` (its marker, in all its names), ``limit`` the
  largest page;
* other required parameters and fields a valid dummy (``HINTS`` by name, else from the schema: enum's
  first value, minimum, a fresh UUID, a date-time tomorrow, ``"probe"``), so that a request reaches the
  organization check instead of stopping at validation; ``ALWAYS`` fields too (without them the endpoint
  answers 422 before it looks anything up); a PATCH changes one plain field (``name`` where there is one),
  so a PATCH that got through would show as a new version.

``variants`` gives the request with every slot foreign and, for an operation with several slots, one
request per slot with only that slot foreign and the others the caller's own: that is what probes
cross-references (your consumer subscribing to their application, your application registering their
unknown device).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

API_PREFIX = "/api/v1"
METHODS = ("get", "put", "post", "patch", "delete")
PAGE_SIZE = 1000
SEARCH = "q"
CSV = "csv"
TINY_CODEC = "function decodeUplink(input) { return {data: {n: input.bytes.length}}; }"
HINTS: dict[str, Any] = {"kind": "http", "role": "read", "url": "https://1.1.1.1/iotd-isolation-probe",
                         "email": "probe@example.org", "source": TINY_CODEC, "name": "isolation-probe"}
ALWAYS: dict[str, Any] = {"payload_hex": "00"}
OBJECT_FIELDS = frozenset({"ids", "decoder"})
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")

Values = Mapping[str, Any]


class MissingName(AssertionError):
    """An operation names an object by a name the isolation test has no value for."""


def names_object(name: str) -> bool:
    return name.endswith(("_id", "_ids")) or name in OBJECT_FIELDS


@dataclass(frozen=True, slots=True)
class Slot:
    where: str      # path, query or body
    name: str       # the parameter or field name, which is also the key into Values


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: Mapping[str, Any] = field(compare=False, repr=False)

    @property
    def name(self) -> str:
        return f"{self.method.upper()} {self.path}"

    def parameters(self, where: str) -> list[Mapping[str, Any]]:
        return [p for p in self.spec.get("parameters", ()) if p.get("in") == where]

    def documents(self, status: int) -> bool:
        return str(status) in self.spec.get("responses", {})

    @property
    def is_collection_read(self) -> bool:
        return self.method == "get" and not self.parameters("path")


def operations(doc: Mapping[str, Any], prefix: str = API_PREFIX) -> list[Operation]:
    """Every (method, path) of the document under ``prefix``, in document order."""
    return [Operation(method, path, spec) for path, item in doc.get("paths", {}).items()
            if path.startswith(prefix) for method, spec in item.items() if method in METHODS]


@dataclass
class Probe:
    operation: Operation
    path: str
    params: list[tuple[str, str]]
    json: Any = None
    content: bytes | None = None
    content_type: str | None = None
    sent: dict[Slot, Any] = field(default_factory=dict)     # every slot and the value it got
    foreign: frozenset[Slot] = frozenset()
    only: Slot | None = None                                # the one foreign slot; None: all of them
    search: str | None = None

    @property
    def variant(self) -> str:
        if set(self.sent) <= self.foreign:
            return "all foreign"
        return "foreign " + ", ".join(f"{s.where} {s.name}" for s in sorted(self.foreign, key=str))

    @property
    def foreign_in_path(self) -> bool:
        return any(s.where == "path" for s in self.foreign)

    def carried_ids(self) -> set[str]:
        """The foreign values this request carried in its slots, as text."""
        return {str(v) for s, v in self.sent.items() if s in self.foreign for v in _flat(v)}

    def carried(self) -> set[str]:
        """Every foreign value this request carried, the search included (what an error may echo)."""
        return self.carried_ids() | ({self.search} if self.search else set())

    def request_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"params": self.params}
        if self.content is not None:
            args["content"] = self.content
            args["headers"] = {"Content-Type": self.content_type or "application/octet-stream"}
        elif self.json is not None:
            args["json"] = self.json
        return args


def _flat(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


class _Builder:
    def __init__(self, doc: Mapping[str, Any], op: Operation, own: Values, foreign: Values, only: Slot | None,
                 filters: bool = True) -> None:
        self.doc, self.op, self.own, self.foreign, self.only, self.filters = doc, op, own, foreign, only, filters
        self.sent: dict[Slot, Any] = {}

    def value(self, slot: Slot, key: str | None = None) -> Any:
        values = self.foreign if self.only is None or slot == self.only else self.own
        name = key or slot.name
        if name not in values:
            raise MissingName(f"{self.op.name}: the isolation test has no value for {name!r} ({slot.where}); add "
                              f"{name!r} to Tenant.values() in tests/support/isolation_world.py so it is probed")
        self.sent[slot] = values[name]
        return values[name]

    def build(self) -> Probe:
        path = self.op.path
        for p in self.op.parameters("path"):
            path = path.replace("{" + p["name"] + "}", str(self.value(Slot("path", p["name"]))))
        params: list[tuple[str, str]] = []
        search = None
        for p in self.op.parameters("query"):
            name, schema = p["name"], p.get("schema", {})
            if self.filters and names_object(name):
                params += [(name, str(v)) for v in _flat(self.value(Slot("query", name)))]
            elif self.filters and name == SEARCH:
                search = str(self.foreign[SEARCH])
                params.append((name, search))
            elif name == "limit":
                params.append((name, str(min(PAGE_SIZE, int(self.concrete(schema).get("maximum", PAGE_SIZE))))))
            elif p.get("required"):
                params.append((name, str(self.example(schema, name))))
        probe = Probe(self.op, path, params, only=self.only, search=search)
        media, schema = self.body()
        if media == "text/csv":
            probe.content, probe.content_type = str(self.value(Slot("body", CSV))).encode(), "text/csv"
        elif media is not None:
            probe.json = self.fill(schema, top=True)
        probe.sent = dict(self.sent)
        probe.foreign = frozenset(self.sent) if self.only is None else frozenset({self.only}) & set(self.sent)
        return probe

    def body(self) -> tuple[str | None, Mapping[str, Any]]:
        content = self.op.spec.get("requestBody", {}).get("content", {})
        if not content:
            return None, {}
        for media in ("application/json", "text/csv"):
            if media in content:
                return media, content[media].get("schema", {})
        raise AssertionError(f"{self.op.name}: no body generator for {sorted(content)}; add one to openapi_probe")

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in schema:
            node: Any = self.doc
            for part in schema["$ref"].removeprefix("#/").split("/"):
                node = node[part]
            schema = node
        return schema

    def concrete(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        """The schema itself, its first non-null alternative, or its parts merged."""
        schema = self.resolve(schema)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = [self.concrete(s) for s in schema[key]]
                return next((s for s in options if s.get("type") != "null"), options[0])
        if "allOf" in schema:
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                merged.update(self.concrete(part))
            return merged
        return schema

    def fill(self, schema: Mapping[str, Any], top: bool = False) -> Any:
        s = self.concrete(schema)
        if s.get("type") != "object" and "properties" not in s:
            return self.example(s, "")
        props: Mapping[str, Any] = s.get("properties", {})
        required = set(s.get("required", ()))
        out: dict[str, Any] = {}
        for name, sub in props.items():
            if top and name == "id" and self.op.method == "post" and not self.op.path.endswith("}"):
                out[name] = self.value(Slot("body", name), _collection_id(self.op.path))
            elif names_object(name):
                value = self.value(Slot("body", name))
                is_list = self.concrete(sub).get("type") == "array"
                out[name] = _flat(value) if is_list else _flat(value)[0]
            elif name in required:
                out[name] = self.example(sub, name)
            elif name in ALWAYS:
                out[name] = ALWAYS[name]
        if top and self.op.method in ("patch", "put") and all(names_object(n) for n in out):
            plain = [n for n, sub in props.items() if self.concrete(sub).get("type") == "string"
                     and not names_object(n)]
            if plain:
                name = "name" if "name" in plain else plain[0]
                out[name] = self.example(props[name], name)
        return out

    def example(self, schema: Mapping[str, Any], name: str) -> Any:
        s = self.concrete(schema)
        if "const" in s:
            return s["const"]
        if "enum" in s:
            return HINTS[name] if HINTS.get(name) in s["enum"] else s["enum"][0]
        kind = s.get("type")
        if kind == "object" or "properties" in s:
            return self.fill(s)
        if kind == "array":
            return [self.example(s.get("items", {}), name) for _ in range(int(s.get("minItems", 0)))]
        if kind in ("integer", "number"):
            low = s["minimum"] if "minimum" in s else s["exclusiveMinimum"] + 1 if "exclusiveMinimum" in s else 1
            return int(low) if kind == "integer" else float(low)
        if kind == "boolean":
            return False
        if name in HINTS:
            return HINTS[name]
        fmt = s.get("format")
        if fmt == "uuid":
            return str(uuid.uuid4())
        if fmt == "date-time":
            return (datetime.now(UTC) + timedelta(days=1)).isoformat()
        if fmt == "date":
            return (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
        return "probe".ljust(int(s.get("minLength", 0)), "x")


def _collection_id(path: str) -> str:
    """``/api/v1/dead-letters`` -> ``dead_letter_id``: the name of a new object's id in that collection."""
    segment = path.rstrip("/").rsplit("/", 1)[-1]
    return segment.removesuffix("s").replace("-", "_") + "_id"


def build(doc: Mapping[str, Any], op: Operation, own: Values, foreign: Values, only: Slot | None = None,
          filters: bool = True) -> Probe:
    """One request: slots from ``foreign`` (all of them, or ``only`` that one) and ``own`` (the rest).
    ``filters=False`` leaves out optional filters and search: a plain read of a collection or object."""
    return _Builder(doc, op, own, foreign, only, filters).build()


def variants(doc: Mapping[str, Any], op: Operation, own: Values, foreign: Values) -> Iterator[Probe]:
    """Every slot foreign; then, with several slots, each slot foreign alone."""
    first = build(doc, op, own, foreign)
    yield first
    if len(first.sent) > 1:
        for slot in first.sent:
            yield build(doc, op, own, foreign, only=slot)


def ghost_values(values: Values, marker: str) -> tuple[dict[str, Any], dict[str, str]]:
    """``values`` with every id replaced by one that names nothing, and the (real, ghost) text pairs.

    UUIDs, 16-hex EUIs and integers get fresh values; other strings (names, CSV) have those UUIDs and EUIs
    and the tenant's ``marker`` replaced, so a decoder id ``<marker>-codec`` becomes ``<ghost>-codec``.
    """
    pairs: dict[str, str] = {marker: "ghost" + uuid.uuid4().hex[:10]}
    out: dict[str, Any] = {}

    def scalar(v: Any) -> Any:
        text = str(v)
        if isinstance(v, int) and not isinstance(v, bool):   # a number is not replaced inside texts
            return 2**62 + v
        if _UUID.match(text):
            return pairs.setdefault(text, str(uuid.uuid4()))
        if _HEX16.match(text):
            return pairs.setdefault(text, uuid.uuid4().hex[:16])
        return None

    for name, value in values.items():
        ghosts = [scalar(v) for v in _flat(value)]
        if all(g is not None for g in ghosts):
            out[name] = ghosts if isinstance(value, list | tuple) else ghosts[0]
    for name, value in values.items():
        if name not in out:
            text = str(value)
            for real in sorted(pairs, key=len, reverse=True):
                text = text.replace(real, pairs[real])
            out[name] = text
    return out, pairs


def same_answer(text: str, control: str, pairs: Mapping[str, str]) -> bool:
    """Whether two answers read the same once each real value and its ghost are put as the same placeholder."""
    for i, (real, ghost) in enumerate(sorted(pairs.items(), key=lambda p: len(p[0]), reverse=True)):
        text, control = text.replace(real, f"<{i}>"), control.replace(ghost, f"<{i}>")
    return text == control
