"""`mstkd phantom`: generate realistic synthetic BraTS-like cases."""

from __future__ import annotations

import argparse

from mstkd.cli.unavailable import register_unavailable


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `phantom` subcommand."""
    register_unavailable(subparsers, "phantom", "generate realistic synthetic BraTS-like cases")
