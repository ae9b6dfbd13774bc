"""Command-line options that several subcommands share."""

from __future__ import annotations

import argparse
from typing import Tuple, Union

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


def add_mirror_axes(options: Options) -> None:
    """The `--mirror-axes` option: test-time mirroring, overriding the model file's."""
    options.add_argument(
        "--mirror-axes",
        type=mirror_axes,
        metavar="AXES",
        help="test-time mirroring: average each window's scores with those of the window mirrored along "
        "these axes, e.g. x (2 passes a window) or xyz (8); 'none' for one pass (default: the model file's)",
    )


def mirror_axes(text: str) -> Tuple[int, ...]:
    """'x', 'xz', 'xyz' ... -> spatial axes (0, 1, 2); 'none' -> () (see parse_mirror_axes)."""
    from mstkd.conventions import parse_mirror_axes
    from mstkd.errors import MSTKDError

    try:
        return parse_mirror_axes(text)
    except MSTKDError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
