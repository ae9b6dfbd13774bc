"""`mstkd train`: train MST-KDNet, MAG-MS or the baseline from a YAML config."""

from __future__ import annotations

import argparse

from mstkd.cli.unavailable import register_unavailable


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `train` subcommand."""
    register_unavailable(subparsers, "train", "train MST-KDNet, MAG-MS or the baseline from a YAML config")
