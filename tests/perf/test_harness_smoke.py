"""The harness still runs end to end (``--size smoke``: a few hundred messages) and its table has every
section with numbers; speed is not asserted here (the figures live in README's Performance table)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from tests.perf.__main__ import main
from tests.perf.report import SECTIONS, Figure, Table, Target


@pytest.mark.perf
def test_smoke_run_fills_every_section(tmp_path: Path) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        table = main(["--size", "smoke", "--json", str(tmp_path / "table.json")])
    assert table.skipped == {}, table.skipped
    for section in SECTIONS:
        measured = [f for f in table.section(section) if f.value is not None]
        assert measured, f"no figure in section {section}"
    by_name = {(f.section, f.name): f.value for f in table.figures}
    assert by_name[("throughput", "messages lost (4 runs)")] == 0
    assert by_name[("throughput", "history: messages stored (MQTT run)")] >= 300
    assert by_name[("scale-out", "messages lost by separate instances")] == 0
    assert by_name[("anchors", "broker relay, publisher → subscriber")]
    written = json.loads((tmp_path / "table.json").read_text())
    assert {row["section"] for row in written["figures"]} == set(SECTIONS)
    assert "load average" in out.getvalue() and "mosquitto" in out.getvalue()


@pytest.mark.parametrize(("value", "target", "verdict"), [
    (0.55, Target(">=", 0.8), "missed by 31 %"),
    (0.8, Target(">=", 0.8), "met"),
    (60.0, Target("<=", 50), "missed by 20 %"),
    (12.0, Target("<=", 50), "met"),
    (150, Target("<=", 0, "0"), "missed by 150"),
    (None, Target(">=", 1), "not measured"),
    (3.0, None, ""),
])
def test_verdicts(value: float | None, target: Target | None, verdict: str) -> None:
    assert Figure("s", "f", value, target=target).verdict() == verdict


def test_a_share_is_missed_by_points() -> None:
    assert Figure("soak", "RSS growth", 49.3, "%", Target("<=", 10)).verdict() == "missed by 39.3 points"


def test_render_lists_skipped_sections() -> None:
    table = Table("smoke", {"cpu": "c", "cores": 2, "memory_gib": 1, "python": "3", "mosquitto": "m",
                            "date": "d", "load_before": "0"})
    table.add(Figure("anchors", "relay", 1000.0, "msg/s"))
    table.skipped["soak"] = "on demand"
    text = table.render()
    assert "1,000 msg/s" in text and "skipped: on demand" in text
