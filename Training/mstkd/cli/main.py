"""Entry point of the `mstkd` command: builds the parser and turns user errors into exit status 2."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from mstkd import __version__
from mstkd.cli import bench, demo, evaluate, evaluate_model, info, phantom, segment, study, train
from mstkd.errors import MSTKDError

SUBCOMMANDS = (demo, segment, evaluate, phantom, train, evaluate_model, study, info, bench)

USER_ERROR_STATUS = 2


def build_parser() -> argparse.ArgumentParser:
    """The full `mstkd` parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="mstkd",
        description="Brain-tumour segmentation from any subset of MRI sequences (FLAIR, T1, T1ce, T2).",
    )
    parser.add_argument("--version", action="version", version=f"mstkd {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in SUBCOMMANDS:
        module.register(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run one subcommand; a user error prints its message (no traceback) and exits with 2."""
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Run parsed arguments' subcommand (`args.run`); a user error is one line on stderr and status 2."""
    try:
        status = args.run(args)
    except MSTKDError as error:
        print(f"mstkd {args.command}: error: {error}", file=sys.stderr)
        return USER_ERROR_STATUS
    except KeyboardInterrupt:
        print(f"mstkd {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
