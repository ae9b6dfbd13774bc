"""The label map of a whole normalised exam: crop to the brain, slide windows, apply the label rule."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from mstkd.boxes import bounding_box
from mstkd.conventions import LabelConvention
from mstkd.experiment.sections import OutputConfig
from mstkd.intensity import brain_mask
from mstkd.prediction.labelrule import probabilities_to_labels, remove_small_et
from mstkd.prediction.tiling import window_count
from mstkd.prediction.window import ScoreFunction, mirrored, predict_scores, score_function

# Called with (windows done, windows in all) as the sliding window advances.
WindowReport = Callable[[int, int], None]


def predict_labels(
    network: nn.Module,
    patch: Sequence[int],
    convention: LabelConvention,
    image: np.ndarray,
    present: Sequence[bool],
    device: torch.device,
    overlap: float = 0.5,
    bf16: bool = False,
    windows_per_batch: int = 4,
    on_windows: Optional[WindowReport] = None,
    mask: Optional[np.ndarray] = None,
    *,
    output: OutputConfig,
) -> np.ndarray:
    """Label map (in `convention`) of a normalised (4, X, Y, Z) image; 0 outside the brain.

    The brain is `mask` where given (the brain of the present sequences before normalisation),
    else the voxels where a present channel is non-zero. Only its bounding box is worth the
    network's time, and a tumour outside it is no tumour. `output` (the model's) names the
    label rule, the test-time mirroring and the small-ET clean-up.
    """
    labels = np.zeros(image.shape[1:], dtype=np.uint8)
    mask = brain_mask(image, present) if mask is None else mask
    box = bounding_box(mask)
    if box is None:
        return labels
    crop = image[(slice(None), *box)]
    score = mirrored(score_function(network, present), output.mirror_axes)
    if on_windows is not None:
        score = _counting(score, window_count(crop.shape[1:], patch, overlap), on_windows)
    scores = predict_scores(
        score,
        torch.from_numpy(np.ascontiguousarray(crop))[None],
        patch,
        device,
        overlap,
        bf16,
        windows_per_batch,
        output.blending,
    )
    labels[box] = probabilities_to_labels(scores[0], convention, output.rule, output.threshold).cpu().numpy()
    labels[~mask] = 0
    return remove_small_et(labels, convention, output.et_min_voxels, output.et_min_voxels_per)


def _counting(score: ScoreFunction, total: int, report: WindowReport) -> ScoreFunction:
    """`score` that also reports how many of the `total` windows it has scored."""
    done = [0]

    def counted(window: torch.Tensor) -> torch.Tensor:
        scores = score(window)
        done[0] = min(done[0] + window.shape[0], total)
        report(done[0], total)
        return scores

    return counted
