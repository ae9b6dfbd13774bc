"""`mstkd demo`: segment a generated phantom case with the bundled demo model."""

from __future__ import annotations

import argparse

from mstkd.cli.unavailable import register_unavailable


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `demo` subcommand."""
    register_unavailable(subparsers, "demo", "segment a generated phantom case with the bundled demo model")
