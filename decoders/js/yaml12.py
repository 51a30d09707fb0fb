"""YAML as the TTN device repository's own tools read it (js-yaml: the YAML 1.2 core schema).

PyYAML implements YAML 1.1, where unquoted ``on``/``off``/``yes``/``no`` are booleans, ``12:30`` is
the number 750 and ISO dates become ``datetime`` objects; js-yaml reads all of those as strings, and
codec examples are compared with what js-yaml gives. This loader keeps PyYAML's safe loader and
swaps its implicit booleans, numbers and timestamps for the 1.2 core rules (``0x1F`` and ``0o17``
stay numbers, as codec examples write bytes in hex).

PyYAML is imported only here, and this module only by the TTN importer.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped,import-not-found,unused-ignore]

_REPLACED = {
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:timestamp",
}


class Yaml12Loader(yaml.SafeLoader):  # type: ignore[misc,unused-ignore]
    """PyYAML's safe loader with YAML 1.2 core-schema scalars."""


Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _REPLACED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _construct_int(loader: Any, node: Any) -> int:
    text = str(loader.construct_scalar(node))
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    if digits.startswith("0x"):
        return sign * int(digits[2:], 16)
    if digits.startswith("0o"):
        return sign * int(digits[2:], 8)
    return sign * int(digits)


Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def load_yaml(path: Path) -> Any:
    """Parse one YAML file; yaml.YAMLError (and OSError) propagate to the caller."""
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=Yaml12Loader)  # a SafeLoader subclass: no arbitrary objects
