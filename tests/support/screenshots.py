"""Where a browser test saves a screenshot: ``tests/screenshots/<name>`` (committed, linked from the
README) when it is missing or ``IOTD_UPDATE_SCREENSHOTS=1`` asks for fresh ones; otherwise a temporary
folder, so that a test run does not leave the tree modified by a picture whose port and timestamps change."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

COMMITTED = Path(__file__).resolve().parents[1] / "screenshots"


def screenshot_path(name: str) -> Path:
    committed = COMMITTED / name
    if os.environ.get("IOTD_UPDATE_SCREENSHOTS") == "1" or not committed.exists():
        COMMITTED.mkdir(exist_ok=True)
        return committed
    scratch = Path(tempfile.gettempdir()) / "iotd-screenshots"
    scratch.mkdir(exist_ok=True)
    return scratch / name
