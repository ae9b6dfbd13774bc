"""Command-line options that several subcommands share."""

from __future__ import annotations

import argparse
from typing import Union

from mstkd.conventions import DEFAULT_DEVICE, DEVICE_CHOICES
from mstkd.resources import DEFAULT_MODEL

# A parser, or one of its argument groups.
Options = Union[argparse.ArgumentParser, argparse._ActionsContainer]


def add_overrides(parser: argparse.ArgumentParser, example: str) -> None:
    """The repeatable `--set key=value` option that overrides any config setting."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a setting, e.g. --set {example} (repeatable)",
    )


def add_device(options: Options, default: str = DEFAULT_DEVICE) -> None:
    """The `--device` option: where to compute."""
    options.add_argument(
        "--device",
        default=default,
        help=f"one of {', '.join(DEVICE_CHOICES)} (default {default})",
    )


def add_model(options: Options) -> None:
    """The `--model` option: a registry name or a model file."""
    options.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        metavar="NAME|PATH",
        help=f"registry name or model file (default {DEFAULT_MODEL})",
    )
