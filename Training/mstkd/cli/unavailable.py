"""Registration of subcommands that this version names but does not run yet."""

from __future__ import annotations

import argparse

from mstkd.errors import MSTKDError


def register_unavailable(subparsers: argparse._SubParsersAction, name: str, summary: str) -> None:
    """Register `name` so that --help lists it and running it says it is not available yet."""
    parser = subparsers.add_parser(name, help=f"{summary} (not available in this version yet)")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    def run(args: argparse.Namespace) -> int:
        raise MSTKDError(f"`mstkd {name}` is not available in this version yet.")

    parser.set_defaults(run=run)
