"""Sliding-window prediction of per-channel scores over a whole volume (Gaussian or constant blending)."""

from __future__ import annotations

import itertools
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from mstkd.devices import autocast
from mstkd.experiment.sections import GAUSSIAN_BLENDING
from mstkd.models.checks import check_finite, values_checked
from mstkd.models.magms import MAGMSNet
from mstkd.models.mstkdnet import MSTKDNet
from mstkd.prediction.sliding import sliding_window

ScoreFunction = Callable[[Tensor], Tensor]


def score_function(network: nn.Module, present: Optional[Sequence[bool]] = None) -> ScoreFunction:
    """The network as a function patch -> channel probabilities in MODEL_CHANNELS order.

    MST-KDNet: its four sigmoids (absent sequences are already zero in the input). MAG-MS:
    softmax probabilities over the sequences it is told are present. The label rule
    (mstkd.prediction.labelrule) turns them into labels after blending.
    """
    if isinstance(network, MSTKDNet):
        return lambda x: network(x).probabilities
    if isinstance(network, MAGMSNet):
        return lambda x: torch.softmax(network(x, present).logits.float(), dim=1)
    raise TypeError(f"no score function for {type(network).__name__}")


def mirrored(score: ScoreFunction, axes: Sequence[int]) -> ScoreFunction:
    """`score` averaged over its (N, C, X, Y, Z) input mirrored along every combination of the spatial
    `axes` (0, 1, 2: x, y, z), each result mirrored back: nnU-Net's test-time mirroring, 2 ** len(axes)
    passes a window. Without axes, `score` itself."""
    if not axes:
        return score
    flips: List[Tuple[int, ...]] = [
        tuple(2 + axis for axis in combination)
        for count in range(1, len(axes) + 1)
        for combination in itertools.combinations(axes, count)
    ]

    def averaged(window: Tensor) -> Tensor:
        total = score(window).float()
        for dims in flips:
            total += score(window.flip(dims)).float().flip(dims)
        return total / (len(flips) + 1)

    return averaged


@torch.inference_mode()
def predict_scores(
    score: ScoreFunction,
    image: Tensor,
    patch: Sequence[int],
    device: torch.device,
    overlap: float = 0.5,
    bf16: bool = False,
    windows_per_batch: int = 4,
    blending: str = GAUSSIAN_BLENDING,
) -> Tensor:
    """(B, 4, X, Y, Z) image -> (B, 4, X, Y, Z) float32 scores on `device`, where the windows run.

    Overlapping windows are averaged as `blending` says (mstkd.experiment.sections.BLENDINGS). The
    image's values are tested once, so that no window waits for a test of its own.
    """
    check_finite(image, "The image")
    with autocast(device, bf16), values_checked():
        return sliding_window(image, patch, score, overlap, windows_per_batch, device, blending)
