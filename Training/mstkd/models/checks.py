"""Cheap checks of what a network is given, so that a wrong input fails with a clear message."""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Iterator, Optional, Sequence

import torch
from torch import Tensor

from mstkd.conventions import SEQUENCES
from mstkd.errors import MSTKDError

# True while the windows of an image whose values were checked as a whole go through a network:
# testing each window's values would make a GPU wait for the host at every window.
_VALUES_CHECKED: ContextVar[bool] = ContextVar("values_checked", default=False)


def check_input(
    x: Tensor,
    network: str,
    *,
    size: Optional[Sequence[int]] = None,
    multiple: int = 1,
    channels: Optional[Sequence[int]] = None,
) -> None:
    """Raise unless `x` is a floating (batch, 4, D, H, W) tensor of the required size, all finite.

    `size` pins D, H, W exactly; otherwise each must be a positive multiple of `multiple`.
    Only `channels` (default: all) must be finite: a network may ignore the others.
    """
    expected_channels = len(SEQUENCES)
    if size is not None:
        expected = f"(batch, {expected_channels}, {', '.join(str(s) for s in size)})"
        fits = tuple(x.shape[2:]) == tuple(size)
        hint = " Run larger volumes through sliding windows of this size."
    else:
        expected = f"(batch, {expected_channels}, D, H, W) with D, H, W multiples of {multiple}"
        fits = all(s > 0 and s % multiple == 0 for s in x.shape[2:])
        hint = " Pad or crop the volume to such a size."
    if x.ndim != 5 or x.shape[1] != expected_channels or not fits:
        raise MSTKDError(
            f"{network} expects a tensor of shape {expected}, channels in the order "
            f"{', '.join(SEQUENCES)}; got shape {tuple(x.shape)}.{hint}"
        )
    if not x.is_floating_point():
        raise MSTKDError(
            f"{network} expects a floating-point tensor; got {x.dtype}. Convert it with .float()."
        )
    # A meta tensor has no values to test; it only serves shape checks and parameter counts.
    if x.device.type != "meta" and not _VALUES_CHECKED.get():
        check_finite(x if channels is None else x[:, list(channels)], f"{network} input")


def check_finite(x: Tensor, what: str) -> None:
    """Raise unless every value of `x` is finite (`what` names it in the message)."""
    if not bool(torch.isfinite(x).all()):
        raise MSTKDError(
            f"{what} holds NaN or infinite values; replace them (e.g. with 0) before segmenting."
        )


@contextlib.contextmanager
def values_checked() -> Iterator[None]:
    """Within it, networks skip the test of their input's values: the caller has tested them."""
    token = _VALUES_CHECKED.set(True)
    try:
        yield
    finally:
        _VALUES_CHECKED.reset(token)
