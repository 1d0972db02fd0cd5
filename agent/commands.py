"""Core agent commands: ``run``, ``once``, ``demo``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the core agent commands to the ``kilnwatch`` parser."""
