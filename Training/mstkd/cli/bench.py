"""`mstkd bench`: measure speed and memory of training and inference."""

from __future__ import annotations

import argparse

from mstkd.cli.unavailable import register_unavailable


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `bench` subcommand."""
    register_unavailable(subparsers, "bench", "measure speed and memory of training and inference")
