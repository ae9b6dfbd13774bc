"""`mstkd info`: print the architecture summary of a config."""

from __future__ import annotations

import argparse

from mstkd.cli.unavailable import register_unavailable


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `info` subcommand."""
    register_unavailable(subparsers, "info", "print the architecture summary of a config")
