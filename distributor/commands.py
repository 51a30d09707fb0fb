"""Service commands of the CLI (serve, demo); kept apart so `iotd decode` starts fast."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the service commands to the CLI."""
