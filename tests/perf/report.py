"""The harness's one table: figures next to their targets, verdicts, the machine, rendered as text or JSON.

Pure (no I/O except ``machine()``, which reads /proc and asks Mosquitto its version), so the verdict
rules are tested as a table. A target is a bound (``>=`` or ``<=``); a figure without one is context
(an anchor, a count) and gets no verdict. "Missed by" is the relative distance to the bound, so
0.55 against ``>= 0.8`` reads "missed by 31 %".
"""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

SECTIONS = ("anchors", "throughput", "latency", "soak", "scale-out", "registry", "javascript", "history", "replay")


@dataclass(frozen=True)
class Target:
    op: str          # ">=" or "<="
    bound: float
    label: str = ""  # how the table shows it when the bound alone says too little ("flat", "0 lost")

    def met(self, value: float) -> bool:
        return value >= self.bound if self.op == ">=" else value <= self.bound

    def text(self) -> str:
        return self.label or f"{self.op} {fmt(self.bound)}"


@dataclass
class Figure:
    section: str
    name: str
    value: float | None          # None: not measured (skipped, or the run could not produce it)
    unit: str = ""
    target: Target | None = None
    note: str = ""

    def verdict(self) -> str:
        if self.value is None:
            return "not measured"
        if self.target is None:
            return ""
        if self.target.met(self.value):
            return "met"
        if self.target.bound == 0:
            return f"missed by {fmt(abs(self.value))}"
        if self.unit == "%":   # a share already: the distance in points reads better than a % of a %
            return f"missed by {abs(self.value - self.target.bound):.1f} points"
        gap = abs(self.value - self.target.bound) / abs(self.target.bound) * 100
        return f"missed by {gap:.0f} %"


@dataclass
class Table:
    size: str
    machine: dict[str, Any]
    figures: list[Figure] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)   # section -> why

    def add(self, *figures: Figure) -> None:
        self.figures.extend(figures)

    def section(self, name: str) -> list[Figure]:
        return [f for f in self.figures if f.section == name]

    def to_json(self) -> dict[str, Any]:
        rows = []
        for f in self.figures:
            row = asdict(f)
            row["target"] = f.target.text() if f.target else None
            row["verdict"] = f.verdict()
            rows.append(row)
        return {"size": self.size, "machine": self.machine, "figures": rows, "skipped": self.skipped}

    def render(self) -> str:
        m = self.machine
        head = [f"iotd performance, size {self.size}, {m['date']}",
                f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}, "
                f"{m['mosquitto']}, load average {m['load_before']} before / {m.get('load_after', '?')} after"]
        rows = [("section", "figure", "value", "target", "verdict")]
        for f in self.figures:
            value = "—" if f.value is None else f"{fmt(f.value)} {f.unit}".rstrip()
            name = f"{f.name} ({f.note})" if f.note else f.name
            rows.append((f.section, name, value, f.target.text() if f.target else "", f.verdict()))
        for section, why in self.skipped.items():
            rows.append((section, f"skipped: {why}", "", "", ""))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        lines.insert(1, "-+-".join("-" * w for w in widths))
        return "\n".join([*head, "", *lines])


def fmt(value: float) -> str:
    """Numbers as a reader wants them: thousands separated, ratios with two decimals."""
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> dict[str, Any]:
    """What the figures depend on: CPU, cores, memory, Python, Mosquitto, the date and the load."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):  # noqa: SIM115 - a short read of /proc
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        version = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True, timeout=5).stdout
        mosquitto = version.splitlines()[0].strip() if version else "mosquitto (version unknown)"
    except (OSError, subprocess.TimeoutExpired):
        mosquitto = "mosquitto not found"
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(memory, 1), "python": platform.python_version(),
            "mosquitto": mosquitto, "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "load_before": load_average()}
