"""`mstkd segment`: segment brain tumours from any subset of FLAIR, T1, T1ce, T2."""

from __future__ import annotations

import argparse

from mstkd.cli.unavailable import register_unavailable


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `segment` subcommand."""
    register_unavailable(
        subparsers, "segment", "segment brain tumours from any subset of FLAIR, T1, T1ce, T2"
    )
