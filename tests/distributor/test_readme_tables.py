"""Every setting is in the README's table with the default the code has, and every built-in decoder in its
decoder table: an operator reads the README, not the code, so a setting missing there (or a stale default)
is a setting nobody can use right."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from distributor.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def table_rows() -> dict[str, str]:
    """`IOTD_X` -> the default column of the row that names it (rows may name two settings: `A` / `B`)."""
    rows: dict[str, str] = {}
    for line in README.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`IOTD_"):
            names = re.findall(r"`(IOTD_[A-Z0-9_]+)`", cells[0])
            defaults = [d.strip() for d in cells[1].split(" / ")] if len(names) > 1 else [cells[1]]
            for i, name in enumerate(names):
                rows[name] = defaults[i] if i < len(defaults) else cells[1]
    return rows


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_each_setting_has_a_row(field: str) -> None:
    assert f"IOTD_{field.upper()}" in table_rows(), f"IOTD_{field.upper()} is missing from the README's settings table"


NUMERIC = sorted(f for f, info in Settings.model_fields.items()
                 if isinstance(info.default, (int, float)) and not isinstance(info.default, bool))


@pytest.mark.parametrize("field", NUMERIC)
def test_numeric_defaults_match(field: str) -> None:
    default = Settings.model_fields[field].default
    shown = table_rows()[f"IOTD_{field.upper()}"]
    assert float(shown) == float(default), f"README says {shown} for IOTD_{field.upper()}, the code {default}"


def test_the_decoder_table_lists_every_built_in_decoder_and_says_how_many() -> None:
    from decoders import catalog

    section = README[README.index("### Built in ("):README.index("### Adding a device type")]
    listed = set(re.findall(r"^\| `([a-z0-9-]+)` \|", section, re.MULTILINE))
    built_in = set(catalog.load_all())
    assert listed == built_in, (sorted(built_in - listed), sorted(listed - built_in))
    assert section.startswith(f"### Built in ({len(built_in)})")
