"""Entry point of the `mstkd` command: builds the parser and turns user errors into exit status 2."""

from __future__ import annotations

import argparse
import importlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
from typing import List, NoReturn, Optional, Sequence

from mstkd import __version__
from mstkd.errors import USER_ERROR_STATUS, MSTKDError

# The module of each subcommand, in the order `mstkd --help` lists them. Only the one being run
# is imported: `mstkd segment` does not wait for what `mstkd evaluate` or `mstkd phantom` import.
SUBCOMMANDS = {
    "demo": "mstkd.cli.demo",
    "segment": "mstkd.cli.segment",
    "serve": "mstkd.cli.serve",
    "evaluate": "mstkd.cli.evaluate",
    "phantom": "mstkd.cli.phantom",
    "train": "mstkd.cli.train",
    "evaluate-model": "mstkd.cli.evaluate_model",
    "study": "mstkd.cli.study",
    "info": "mstkd.cli.info",
    "bench": "mstkd.cli.bench",
}

# A command ended by a signal exits with 128 + its number, as a shell reports it.
SIGNAL_STATUS_BASE = 128
# Commands whose process may end without the interpreter's teardown once they return: every
# output written, flushed to disk and checked, nothing left running. Tearing down PyTorch's
# modules took 0.3-0.5 s of each `mstkd segment` on a 2-core CPU, a tenth of what a user waits.
TEARDOWN_FREE_COMMANDS = ("segment",)


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other error of the command."""

    def error(self, message: str) -> NoReturn:
        """Print `PROG: error: MESSAGE (see PROG --help)` and exit with status 2."""
        self.exit(USER_ERROR_STATUS, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class Stopped(BaseException):
    """SIGTERM arrived: unwind (every `finally` removes what it had half-written) and exit."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def build_parser(commands: Sequence[str] = tuple(SUBCOMMANDS)) -> argparse.ArgumentParser:
    """The `mstkd` parser with `commands` registered (default: every subcommand)."""
    parser = OneLineErrorParser(
        prog="mstkd",
        description="Brain-tumour segmentation from any subset of MRI sequences (FLAIR, T1, T1ce, T2).",
    )
    parser.add_argument("--version", action="version", version=f"mstkd {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in commands:
        importlib.import_module(SUBCOMMANDS[command]).register(subparsers)
    return parser


def entry() -> NoReturn:
    """The `mstkd` executable and `python -m mstkd`: run the command line, then exit with its status.

    A command of TEARDOWN_FREE_COMMANDS, run alone (no torchrun, thread or child process left),
    exits at once after flushing the standard streams and the logs.
    """
    status = main()
    if sys.argv[1:2] and sys.argv[1] in TEARDOWN_FREE_COMMANDS and _nothing_left_running():
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)


def _nothing_left_running() -> bool:
    """No other thread, child process or torchrun group that a normal exit would wait for or end."""
    alone = "WORLD_SIZE" not in os.environ
    return alone and threading.active_count() == 1 and not multiprocessing.active_children()


def main(argv: Optional[List[str]] = None) -> int:
    """Run one subcommand; a user error prints its message (no traceback) and exits with 2."""
    argv = sys.argv[1:] if argv is None else argv
    named = argv[:1] if argv and argv[0] in SUBCOMMANDS else tuple(SUBCOMMANDS)
    return run(build_parser(named).parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Run parsed arguments' subcommand (`args.run`); a user error is one line on stderr and status 2.

    SIGTERM and SIGINT stop the command cleanly (a training run checkpoints first) and exit with
    128 + the signal's number.
    """
    previous = _stop_on_sigterm()
    try:
        status = args.run(args)
    except MSTKDError as error:
        print(f"mstkd {args.command}: error: {error}", file=sys.stderr)
        return USER_ERROR_STATUS
    except MemoryError:
        print(
            f"mstkd {args.command}: error: not enough memory (RAM); close other programs, use smaller "
            "inputs, or a machine with more memory.",
            file=sys.stderr,
        )
        return USER_ERROR_STATUS
    except KeyboardInterrupt:
        print(f"mstkd {args.command}: interrupted", file=sys.stderr)
        return SIGNAL_STATUS_BASE + signal.SIGINT
    except Stopped as stop:
        print(f"mstkd {args.command}: stopped by {signal.Signals(stop.signum).name}", file=sys.stderr)
        return SIGNAL_STATUS_BASE + stop.signum
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return int(status or 0)


def _stop_on_sigterm():
    """Turn SIGTERM into `Stopped` (in the main thread only, where Python delivers signals)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum, frame) -> None:
        raise Stopped(signum)

    return signal.signal(signal.SIGTERM, stop)


if __name__ == "__main__":
    sys.exit(main())
