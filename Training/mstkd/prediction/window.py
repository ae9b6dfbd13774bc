"""Sliding-window prediction of per-channel scores over a whole volume (Gaussian blending)."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import Tensor, nn

from mstkd.devices import autocast
from mstkd.models.checks import check_finite, values_checked
from mstkd.models.magms import MAGMSNet
from mstkd.models.mstkdnet import MSTKDNet
from mstkd.prediction.sliding import sliding_window

ScoreFunction = Callable[[Tensor], Tensor]

# MST-KDNet's channels are independent sigmoids and, as in the reference, a tumour channel counts
# where its probability exceeds 0.5. Its background channel is only a training target: near 1
# almost everywhere (the tumour is a few percent of the brain), it would out-vote tumour
# channels that are confidently on. So the background's score is this threshold instead.
SIGMOID_THRESHOLD = 0.5


def score_function(network: nn.Module, present: Optional[Sequence[bool]] = None) -> ScoreFunction:
    """The network as a function patch -> channel scores in MODEL_CHANNELS order, for argmax.

    MST-KDNet: the three tumour sigmoids, and SIGMOID_THRESHOLD as the background's score
    (absent sequences are already zero in the input). MAG-MS: softmax probabilities over the
    sequences it is told are present.
    """
    if isinstance(network, MSTKDNet):
        return lambda x: _thresholded(network(x).probabilities)
    if isinstance(network, MAGMSNet):
        return lambda x: torch.softmax(network(x, present).logits.float(), dim=1)
    raise TypeError(f"no score function for {type(network).__name__}")


def _thresholded(probabilities: Tensor) -> Tensor:
    tumour = probabilities[:, :-1]
    return torch.cat([tumour, torch.full_like(probabilities[:, -1:], SIGMOID_THRESHOLD)], dim=1)


@torch.inference_mode()
def predict_scores(
    score: ScoreFunction,
    image: Tensor,
    patch: Sequence[int],
    device: torch.device,
    overlap: float = 0.5,
    bf16: bool = False,
    windows_per_batch: int = 4,
) -> Tensor:
    """(B, 4, X, Y, Z) image -> (B, 4, X, Y, Z) float32 scores on `device`, where the windows run.

    The image's values are tested once, so that no window waits for a test of its own.
    """
    check_finite(image, "The image")
    with autocast(device, bf16), values_checked():
        return sliding_window(image, patch, score, overlap, windows_per_batch, device)
