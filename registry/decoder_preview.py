"""What a decoder change would do to real data (issue 17): the stored message as delivered beside a
candidate decoder's answer for the same uplink, and what differs (pure, no I/O).

Fields are compared by path (``a.b``, ``list[0].x``), up to ``MAX_DEPTH`` levels and ``MAX_PATHS`` paths a
message, so a candidate that answers a megabyte cannot make the answer one; a field is *added* (only the
candidate has it), *removed* (only the current output has it) or *changed* (both, different values). An
error is *fixed* when the current output had errors and the candidate has none, *introduced* the other way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

MAX_DEPTH = 8
MAX_PATHS = 500
MAX_NAMED = 50        # field paths the summary names, per kind, most frequent first


def flatten(value: Any, prefix: str = "", depth: int = 0, out: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{"a.b": 1, "c[0]": 2}`` for ``{"a": {"b": 1}, "c": [2]}``; deeper than ``MAX_DEPTH`` is one leaf."""
    out = {} if out is None else out
    if len(out) >= MAX_PATHS or (not prefix and value in ({}, [], None)):   # nothing decoded: no fields at all
        return out
    if isinstance(value, dict) and value and depth < MAX_DEPTH:
        for key, item in value.items():
            flatten(item, f"{prefix}.{key}" if prefix else str(key), depth + 1, out)
    elif isinstance(value, list) and value and depth < MAX_DEPTH:
        for i, item in enumerate(value):
            flatten(item, f"{prefix}[{i}]", depth + 1, out)
    else:
        out[prefix or "."] = value
    return out


def diff(current: Any, candidate: Any, current_errors: list[str], candidate_errors: list[str]) -> dict[str, Any]:
    """What differs between the decoded data delivered and the candidate's, for one message."""
    before, after = flatten(current or {}), flatten(candidate or {})
    error = None
    if current_errors and not candidate_errors:
        error = "fixed"
    elif candidate_errors and not current_errors:
        error = "introduced"
    return {
        "added": sorted(after.keys() - before.keys()),
        "removed": sorted(before.keys() - after.keys()),
        "changed": sorted(k for k in before.keys() & after.keys() if before[k] != after[k]),
        "error": error,
    }


def summary(diffs: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Counts over the compared messages and the field paths involved, most frequent first."""
    compared = changed = fixed = introduced = 0
    fields: dict[str, Counter[str]] = {"added": Counter(), "removed": Counter(), "changed": Counter()}
    for d in diffs:
        compared += 1
        if d["added"] or d["removed"] or d["changed"] or d["error"]:
            changed += 1
        fixed += d["error"] == "fixed"
        introduced += d["error"] == "introduced"
        for kind, counter in fields.items():
            counter.update(d[kind])
    return {"compared": compared, "changed": changed, "errors_fixed": fixed, "errors_introduced": introduced,
            **{f"fields_{kind}": [path for path, _ in counter.most_common(MAX_NAMED)]
               for kind, counter in fields.items()}}
