"""Cheap checks of what a network is given, so that a wrong input fails with a clear message."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from mstkd.conventions import SEQUENCES
from mstkd.errors import MSTKDError


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
    values = x if channels is None else x[:, list(channels)]
    # A meta tensor has no values to test; it only serves shape checks and parameter counts.
    if x.device.type != "meta" and not bool(torch.isfinite(values).all()):
        raise MSTKDError(
            f"{network} input holds NaN or infinite values; replace them (e.g. with 0) before segmenting."
        )
