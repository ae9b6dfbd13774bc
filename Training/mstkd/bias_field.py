"""Bias-field correction before normalisation: N4 (SimpleITK), fitted as a smooth field only.

A scanner's receive coils make each sequence brighter in some parts of the brain than in others
(a multiplicative field, smooth over the head). Left in, that field can lift normal white matter
to the brightness of oedema on FLAIR and T2. N4 (Tustison et al., 2010) estimates it inside the
brain and divides it out. The fit here is coarse: two levels (N4's four B-spline control points
a side, then one more), fitted on a grid of about 8 mm. That follows a coil's field (it removes
about two thirds of a 0.55-1.7x field) yet is too stiff to "correct" away a large oedema (its
contrast to the rest of the brain drops by about 2 %); finer fits flatten oedema, and the model
then misses it. At 2 mm it costs well under a second a sequence.

Which correction a model's inputs get is part of the model (`data.bias_correction`, recorded in
its file), applied alike in training (to each case as loaded), validation, evaluation and
inference, each sequence on its own over its non-zero voxels, before the z-score.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import SimpleITK as sitk

from mstkd.errors import MSTKDError

NONE, N4 = "none", "n4"
BIAS_CORRECTIONS = (NONE, N4)

FIT_SPACING_MM = 8.0  # the field is fitted on a grid about this coarse: it is smooth, and N4 is fast there
FIT_LEVELS = 2  # N4's four control points a side, then five: a stiff field
FIT_ITERATIONS = 50  # at most, per level
MIN_VOXELS = 1000  # a sequence covering less than this is left as it is (too little to fit a field to)


def check_bias_correction(method: str) -> str:
    """`method` when it names a correction, else a clear error."""
    if method not in BIAS_CORRECTIONS:
        raise MSTKDError(f"Unknown bias correction {method!r}; choose one of {', '.join(BIAS_CORRECTIONS)}.")
    return method


def correct_bias(volumes: np.ndarray, spacing: Sequence[float], method: str) -> np.ndarray:
    """(C, I, J, K) raw volumes, spacing per array axis (mm) -> each channel bias-corrected by `method`.

    Channels are corrected one by one over their non-zero voxels (0 stays 0); an empty channel
    (an absent sequence) stays empty. `none` returns the volumes as they are.
    """
    if check_bias_correction(method) == NONE:
        return volumes
    corrected = np.array(volumes, dtype=np.float32, copy=True)
    for channel, volume in enumerate(corrected):
        if np.count_nonzero(volume) >= MIN_VOXELS:
            corrected[channel] = volume / n4_field(volume, spacing)
    return corrected


def n4_field(volume: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """N4's multiplicative bias field of an (I, J, K) volume over its non-zero voxels (1 outside them)."""
    inside = volume != 0
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume.transpose(2, 1, 0), dtype=np.float32))
    image.SetSpacing([float(s) for s in spacing])
    mask = sitk.GetImageFromArray(np.ascontiguousarray(inside.transpose(2, 1, 0), dtype=np.uint8))
    mask.CopyInformation(image)
    shrink = [max(1, int(round(FIT_SPACING_MM / float(s)))) for s in spacing]
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([FIT_ITERATIONS] * FIT_LEVELS)
    n4.Execute(sitk.Shrink(image, shrink), sitk.Shrink(mask, shrink))
    log_field = sitk.GetArrayFromImage(n4.GetLogBiasFieldAsImage(image)).transpose(2, 1, 0)
    return np.where(inside, np.exp(log_field), 1.0).astype(np.float32)
