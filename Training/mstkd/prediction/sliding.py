"""Sliding windows with Gaussian or constant blending over a whole volume, without importing MONAI.

The same windows, weights and arithmetic as MONAI's `sliding_window_inference` (mode "gaussian",
sigma_scale 0.125, or "constant"; zero padding), so the scores are the same to the bit
on the CPU (Testing/test_prediction_sliding.py compares the two). The inference path uses this
module because `import monai` loads every MONAI submodule (pandas, scikit-learn, nibabel,
matplotlib ...) and doubled the start-up of `mstkd segment`; training keeps MONAI.

Unlike MONAI with an output device, the blended sum stays on the windows' device until the
end, so a GPU runs the whole loop without waiting for the host.
"""

from __future__ import annotations

import itertools
from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mstkd.experiment.sections import BLENDINGS, GAUSSIAN_BLENDING
from mstkd.prediction.tiling import window_starts

# The Gaussian's standard deviation as a fraction of the window's side (MONAI's default).
SIGMA_SCALE = 0.125
# Weights below this (the window's corners) are raised to it, so no voxel divides by ~0.
MIN_WEIGHT = 1e-3

Window = Tuple[slice, ...]


def window_grid(size: Sequence[int], patch: Sequence[int], overlap: float) -> List[Window]:
    """Every window over a volume of `size` (padded up to `patch`), the last axis varying fastest."""
    starts = [window_starts(side, window, overlap) for side, window in zip(size, patch)]
    return [
        tuple(slice(start, start + window) for start, window in zip(corner, patch))
        for corner in itertools.product(*starts)
    ]


def gaussian_weights(patch: Sequence[int], device: torch.device) -> Tensor:
    """A window's blending weights: a separable Gaussian, 1 at the centre, at least MIN_WEIGHT."""
    weights: Optional[Tensor] = None
    for axis, side in enumerate(patch):
        x = torch.arange(-(side - 1) / 2.0, (side - 1) / 2.0 + 1, dtype=torch.float, device=device)
        profile = torch.exp(x**2 / (-2 * (side * SIGMA_SCALE) ** 2))
        weights = profile if weights is None else weights.unsqueeze(-1) * profile[(None,) * axis]
    assert weights is not None
    return weights.clamp(min=max(float(weights.min()), MIN_WEIGHT))


@torch.inference_mode()
def sliding_window(
    image: Tensor,
    patch: Sequence[int],
    predict: Callable[[Tensor], Tensor],
    overlap: float = 0.5,
    windows_per_batch: int = 4,
    device: Optional[torch.device] = None,
    blending: str = GAUSSIAN_BLENDING,
) -> Tensor:
    """Blend `predict` over windows of `patch` of a (B, C, *size) image -> (B, K, *size) float32 on `device`.

    `predict` maps (N, C, *patch) to (N, K, *patch). A side shorter than the patch is padded
    with zeros (as much before as after, one more after when odd), and the result cropped back.
    Windows are weighted by a Gaussian (`blending` "gaussian") or equally ("constant").
    """
    if blending not in BLENDINGS:
        raise ValueError(f"blending must be one of {BLENDINGS}, not {blending!r}")
    device = image.device if device is None else device
    batch, size = image.shape[0], tuple(image.shape[2:])
    padding = [max(window - side, 0) for side, window in zip(size, patch)]
    pad_arg: List[int] = []
    for extra in reversed(padding):
        pad_arg += [extra // 2, extra - extra // 2]
    image = F.pad(image.to(device), pad_arg) if any(padding) else image.to(device)
    padded = tuple(image.shape[2:])
    windows = [(index, window) for index in range(batch) for window in window_grid(padded, patch, overlap)]
    if blending == GAUSSIAN_BLENDING:
        weights = gaussian_weights(patch, device)[None, None]
    else:
        weights = torch.ones((1, 1, *patch), dtype=torch.float, device=device)

    total: Optional[Tensor] = None
    for first in range(0, len(windows), windows_per_batch):
        chunk = windows[first : first + windows_per_batch]
        scores = predict(torch.cat([image[(slice(i, i + 1), slice(None), *w)] for i, w in chunk])).float()
        if total is None:
            total = torch.zeros((batch, scores.shape[1], *padded), dtype=torch.float, device=device)
        weighted = scores * weights
        for (index, window), score in zip(chunk, weighted):
            total[(slice(index, index + 1), slice(None), *window)] += score
    assert total is not None
    coverage = torch.zeros((1, 1, *padded), dtype=torch.float, device=device)
    for window in window_grid(padded, patch, overlap):
        coverage[(slice(None), slice(None), *window)] += weights
    total /= coverage
    crop = tuple(slice(extra // 2, extra // 2 + side) for extra, side in zip(padding, size))
    return total[(slice(None), slice(None), *crop)]
