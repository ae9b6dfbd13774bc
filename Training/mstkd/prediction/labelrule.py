"""From per-channel probabilities to a label map: the label rule, then the small-ET clean-up.

The networks give one probability per channel of conventions.MODEL_CHANNELS (NCR, ED, ET,
background). Three rules turn them into labels:

- `exclusive`: a voxel is tumour where its most probable tumour channel exceeds the threshold,
  and takes that channel; the background channel is not consulted (MST-KDNet's sigmoids are
  independent, and a background channel near 1 almost everywhere would out-vote confident
  tumour channels). One sub-region per voxel, decided among the tumour channels.
- `independent`: each tumour channel is thresholded on its own, as the MST-KDNet reference
  scores: WT = any channel on, TC = NCR or ET on, ET = ET on. The label map keeps exactly
  these regions by giving a voxel ET before NCR before ED.
- `argmax`: the most probable of all four channels, background included (MAG-MS's softmax).

Then, optionally, enhancing tumour smaller than `et_min_voxels` is relabelled NCR (MAG-MS's
post-processing: its evaluation zeroes ET when the case's ET has fewer than 500 voxels while
its TC still counts those voxels, which relabelling as NCR reproduces).
"""

from __future__ import annotations

import numpy as np
import torch

from mstkd.conventions import (
    ARGMAX_RULE,
    AXIS_LETTERS,
    EXCLUSIVE_RULE,
    INDEPENDENT_RULE,
    LABEL_RULES,
    MODEL_CHANNELS,
    LabelConvention,
)
from mstkd.errors import MSTKDError
from mstkd.experiment.sections import GAUSSIAN_BLENDING, PER_CASE, OutputConfig

EXCLUSIVE, INDEPENDENT, ARGMAX = EXCLUSIVE_RULE, INDEPENDENT_RULE, ARGMAX_RULE

_TUMOUR = len(MODEL_CHANNELS) - 1  # the tumour channels come first, background last
_NCR, _ED, _ET = (MODEL_CHANNELS.index(name) for name in ("ncr", "ed", "et"))


def describe_output(output: OutputConfig) -> str:
    """One line for a report: the label rule, its threshold and the small-ET clean-up."""
    line = f"label rule {output.rule}"
    if output.rule != ARGMAX:
        line += f" (threshold {output.threshold:g})"
    if output.blending != GAUSSIAN_BLENDING:
        line += f", {output.blending} window blending"
    if output.mirror_axes:
        line += ", mirrored along " + ", ".join(AXIS_LETTERS[axis] for axis in sorted(output.mirror_axes))
    if output.et_min_voxels:
        line += f", ET under {output.et_min_voxels} voxels per {output.et_min_voxels_per} relabelled NCR"
    return line


def probabilities_to_labels(
    probabilities: torch.Tensor, convention: LabelConvention, rule: str, threshold: float = 0.5
) -> torch.Tensor:
    """(..., 4, D, H, W) probabilities in MODEL_CHANNELS order -> (..., D, H, W) uint8 labels."""
    tumour = probabilities.movedim(-4, 0)[:_TUMOUR]
    values = [convention.values[name] for name in MODEL_CHANNELS[:_TUMOUR]]
    if rule == INDEPENDENT:
        labels = torch.zeros(tumour.shape[1:], dtype=torch.uint8, device=probabilities.device)
        for channel in (_ED, _NCR, _ET):  # later channels win: ET before NCR before ED
            labels[tumour[channel] > threshold] = values[channel]
        return labels
    table = torch.tensor([*values, 0], dtype=torch.uint8, device=probabilities.device)
    if rule == EXCLUSIVE:
        best, channel = tumour.max(dim=0)
        return torch.where(best > threshold, table[channel], table[_TUMOUR])
    if rule == ARGMAX:
        return table[probabilities.argmax(dim=-4)]
    raise MSTKDError(f"Unknown label rule {rule!r}; choose one of {', '.join(LABEL_RULES)}.")


def remove_small_et(
    labels: np.ndarray, convention: LabelConvention, min_voxels: int, per: str = PER_CASE
) -> np.ndarray:
    """Relabel as NCR the enhancing tumour of a case (or of a component) under `min_voxels` voxels."""
    enhancing = labels == convention.values["et"]
    if min_voxels <= 0 or not enhancing.any():
        return labels
    if per == PER_CASE:
        small = enhancing if enhancing.sum() < min_voxels else np.zeros_like(enhancing)
    else:
        from scipy import ndimage  # here, not above: `mstkd segment` need not wait for scipy's import

        components, _ = ndimage.label(enhancing, structure=np.ones((3, 3, 3), dtype=bool))
        sizes = np.bincount(components.ravel())
        small = enhancing & (sizes[components] < min_voxels)
    out = labels.copy()
    out[small] = convention.values["ncr"]
    return out
