"""`mstkd evaluate-model`: evaluate a checkpoint on the 15-subset protocol."""

from __future__ import annotations

import argparse

from mstkd.cli.unavailable import register_unavailable


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `evaluate-model` subcommand."""
    register_unavailable(subparsers, "evaluate-model", "evaluate a checkpoint on the 15-subset protocol")
