"""Packaging metadata in the form current setuptools wants (issue 15): an SPDX ``license`` string and
``license-files`` (PEP 639), not the deprecated table that warned on every install."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_license_is_an_spdx_string_with_its_files() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    project = pyproject["project"]
    assert project["license"] == "MPL-2.0"
    assert project["license-files"] and all((ROOT / name).is_file() for name in project["license-files"])
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("Mozilla Public License Version 2.0")
    assert not any(c.startswith("License ::") for c in project.get("classifiers", ()))   # refused beside SPDX


def test_the_build_backend_understands_it() -> None:
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["build-system"]["requires"]
    found = next(re.fullmatch(r"setuptools>=(\d+)(?:\.\d+)*", r) for r in requires if r.startswith("setuptools"))
    assert found is not None and int(found.group(1)) >= 77   # the first setuptools with PEP 639
