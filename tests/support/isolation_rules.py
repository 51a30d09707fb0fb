"""What the generated isolation test holds every answer to, as pure functions, and its coverage table.

**The leak rule.** No answer to the caller (any status; body and headers) contains any of the other
tenant's secrets (``Tenant.secrets``: ids, names, dev_eui, keys, ingest key, consumer secrets, decoder
source, the unknown device's EUI), with exactly two exceptions:

1. **Echo of the request.** A 4xx answer whose body is exactly ``{"error": "<text>"}`` may repeat values
   that this very request carried, *if* the same request with never-used values in their place
   (``openapi_probe.ghost_values``) gets the same status and the same text (placeholders for the
   values). Such an answer says nothing more than what the caller sent ("device not found", "no decoder
   'x'"). An echo that differs ("decoder 'x' already exists", 409, where a free id gets 201) is an
   existence oracle and a finding. A 2xx answer may never repeat a foreign value: it either returned the
   other tenant's object or accepted a reference to it.
2. **The caller's own trail.** Inside an object that names one of the caller's own keys (an audit-log
   entry the caller's organization wrote), values the caller's organization sent in requests that were
   accepted (2xx) may appear: it is the caller's own input, recorded for the caller.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any


def found_in(text: str, secrets: Mapping[str, str], excused: Iterable[str] = ()) -> list[str]:
    """Labels of the secrets in ``text`` once every ``excused`` value is taken out (case-insensitive)."""
    low = text.lower()
    for value in sorted({e.lower() for e in excused if e}, key=len, reverse=True):
        low = low.replace(value, "\x00")
    return [label for label, value in secrets.items() if value in low]


def leaks(body: Any, headers: Mapping[str, str], secrets: Mapping[str, str], trail_ids: set[str],
          ledger: set[str]) -> set[str]:
    """Labels of the secrets in an answer, outside objects that name one of ``trail_ids`` (exception 2)."""
    found: set[str] = set()

    def walk(node: Any, excused: frozenset[str]) -> None:
        if isinstance(node, dict):
            if any(isinstance(v, str) and any(k in v.lower() for k in trail_ids) for v in node.values()):
                excused = frozenset(ledger)
            for key, value in node.items():
                found.update(found_in(str(key), secrets, excused))
                walk(value, excused)
        elif isinstance(node, list):
            for value in node:
                walk(value, excused)
        elif node is not None:
            found.update(found_in(str(node), secrets, excused))

    walk(body, frozenset())
    for name, value in headers.items():
        found.update(found_in(f"{name}: {value}", secrets))
    return found


def is_error_body(body: Any) -> bool:
    return isinstance(body, dict) and set(body) == {"error"} and isinstance(body["error"], str)


def echoed(labels: Iterable[str], secrets: Mapping[str, str], carried: Iterable[str]) -> bool:
    """Whether every found secret is part of a value the request carried (exception 1 may apply)."""
    sent = [c.lower() for c in carried]
    return all(any(secrets[label] in c for c in sent) for label in labels)


def coverage_table(rows: Iterable[tuple[str, str, int]], operations: list[str], roles: tuple[str, ...]) -> str:
    """One line per operation, one column per role: the statuses it answered (``404x3`` = three times)."""
    cells: dict[tuple[str, str], Counter[int]] = {}
    for op, role, status in rows:
        cells.setdefault((op, role), Counter())[status] += 1
    width = max(len(op) for op in operations) + 2
    lines = ["operation".ljust(width) + "".join(r.ljust(16) for r in roles)]
    for op in operations:
        row = op.ljust(width)
        for role in roles:
            counts = cells.get((op, role), Counter())
            text = " ".join(f"{s}x{n}" if n > 1 else str(s) for s, n in sorted(counts.items())) or "-"
            row += text.ljust(16)
        lines.append(row.rstrip())
    return "\n".join(lines)
