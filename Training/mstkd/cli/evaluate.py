"""`mstkd evaluate`: score predicted label maps against ground truth (Dice, HD95 per region)."""

from __future__ import annotations

import argparse

from mstkd.cli.unavailable import register_unavailable


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `evaluate` subcommand."""
    register_unavailable(
        subparsers, "evaluate", "score predicted label maps against ground truth (Dice, HD95 per region)"
    )
