"""Entry point of the `mstkd` command: builds the parser and turns user errors into exit status 2."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional, Sequence

from mstkd import __version__
from mstkd.errors import MSTKDError

# The module of each subcommand, in the order `mstkd --help` lists them. Only the one being run
# is imported: `mstkd segment` does not wait for what `mstkd evaluate` or `mstkd phantom` import.
SUBCOMMANDS = {
    "demo": "mstkd.cli.demo",
    "segment": "mstkd.cli.segment",
    "evaluate": "mstkd.cli.evaluate",
    "phantom": "mstkd.cli.phantom",
    "train": "mstkd.cli.train",
    "evaluate-model": "mstkd.cli.evaluate_model",
    "info": "mstkd.cli.info",
    "bench": "mstkd.cli.bench",
}

USER_ERROR_STATUS = 2


def build_parser(commands: Sequence[str] = tuple(SUBCOMMANDS)) -> argparse.ArgumentParser:
    """The `mstkd` parser with `commands` registered (default: every subcommand)."""
    parser = argparse.ArgumentParser(
        prog="mstkd",
        description="Brain-tumour segmentation from any subset of MRI sequences (FLAIR, T1, T1ce, T2).",
    )
    parser.add_argument("--version", action="version", version=f"mstkd {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in commands:
        importlib.import_module(SUBCOMMANDS[command]).register(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run one subcommand; a user error prints its message (no traceback) and exits with 2."""
    argv = sys.argv[1:] if argv is None else argv
    named = argv[:1] if argv and argv[0] in SUBCOMMANDS else tuple(SUBCOMMANDS)
    return run(build_parser(named).parse_args(argv))


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
