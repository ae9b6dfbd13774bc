"""Is each input an MR image of a brain, and are they one exam? Refuse what cannot mean anything.

The preflight checks that a volume is a valid 3D image; these checks look at what it shows. A
label map or mask (a handful of distinct values), an image with next to no signal, pure noise
(neighbouring voxels unrelated) or the same image given as two sequences make any segmentation
meaningless: MSTKDError. Sequences on one grid whose brains do not coincide (another patient's
or another session's scan) may still segment, but the result is suspect: a warning, which the
command prints and the summary records.
"""

from __future__ import annotations

from itertools import combinations
from typing import List, Mapping

import numpy as np
import SimpleITK as sitk

from mstkd.conventions import DISPLAY_NAMES
from mstkd.errors import MSTKDError
from mstkd.imageio import same_grid

# An MR image has hundreds of intensity levels; a label map or mask a handful.
MAX_LABEL_VALUES = 8
# Less signal than this (mL of voxels that differ from the background) is not an image of a brain;
# the thinnest slab the preflight accepts (30 mm over 80 mm in-plane) holds more than ten times it.
MIN_SIGNAL_ML = 10.0
# Neighbouring voxels of an MR image are strongly correlated (0.7-0.95 on every phantom sequence);
# independent noise gives about 0.
MIN_NEIGHBOUR_CORRELATION = 0.3
# Skull-stripped sequences of one exam share their brain mask (Dice 1.0 on BraTS-style data);
# two different brains on one grid overlap by about 0.95 at most.
MIN_MASK_DICE = 0.97
# A mask is compared only when the background (exactly 0) is a real part of the image.
MIN_BACKGROUND_FRACTION = 0.2
_SAMPLE_STRIDE = 5
_SAMPLED_PLANES = 32


def check_plausible(images: Mapping[str, sitk.Image]) -> List[str]:
    """Raise MSTKDError for inputs that cannot be segmented meaningfully; return warnings for suspect ones."""
    # (k, j, i) views of the voxels, no copy: orientation does not matter here.
    arrays = {name: sitk.GetArrayViewFromImage(image) for name, image in images.items()}
    for name, image in images.items():
        _check_content(_label(name), arrays[name], image.GetSpacing()[::-1])
    pairs = list(combinations(images, 2))
    for a, b in pairs:
        if _identical(arrays[a], arrays[b]):
            raise MSTKDError(
                f"The {_label(a)} and {_label(b)} volumes are the same image (identical voxels): give each "
                "sequence its own file, or leave out the one you do not have (the model handles missing "
                "sequences)."
            )
    masks = {name: values != 0 for name, values in arrays.items()}
    warnings = []
    for a, b in pairs:
        if same_grid(images[a], images[b]):
            warning = _mask_disagreement(a, b, masks[a], masks[b])
            if warning:
                warnings.append(warning)
    return warnings


def _identical(first: np.ndarray, second: np.ndarray) -> bool:
    """Voxel for voxel equal; a sample is compared first, so different images cost next to nothing."""
    if first.shape != second.shape or first.dtype != second.dtype:
        return False
    sample = slice(None, None, _SAMPLE_STRIDE * 7)
    return np.array_equal(first.ravel()[sample], second.ravel()[sample]) and np.array_equal(first, second)


def _mask_disagreement(a: str, b: str, first: np.ndarray, second: np.ndarray) -> str:
    if min(1.0 - float(m.mean()) for m in (first, second)) < MIN_BACKGROUND_FRACTION:
        return ""
    dice = 2.0 * np.count_nonzero(first & second) / (np.count_nonzero(first) + np.count_nonzero(second))
    if dice >= MIN_MASK_DICE:
        return ""
    return (
        f"the brains of {_label(a)} and {_label(b)} overlap by only {dice:.2f} (Dice of their "
        f"masks, on one grid): are they of the same patient and session? Check the inputs before using "
        "the result."
    )


def _check_content(label: str, values: np.ndarray, spacing) -> None:
    """`spacing` in the array's axis order."""
    background = values.min()
    signal_ml = float(np.count_nonzero(values != background)) * float(np.prod(spacing)) / 1000.0
    if signal_ml < MIN_SIGNAL_ML:
        raise MSTKDError(
            f"The {label} volume is almost blank: only {signal_ml:.2g} mL of it differs from the background "
            f"(a brain is over 1000 mL); check that the right file was exported completely."
        )
    sample = values.ravel()[::_SAMPLE_STRIDE]
    distinct = np.unique(sample)
    if len(distinct) <= MAX_LABEL_VALUES:
        shown = ", ".join(f"{v:g}" for v in distinct)
        raise MSTKDError(
            f"The {label} volume holds only {len(distinct)} distinct values ({shown}): it is a label map or "
            "mask, not an MR image; give the MR volume of that sequence."
        )
    correlation = _neighbour_correlation(values, spacing)
    if correlation < MIN_NEIGHBOUR_CORRELATION:
        raise MSTKDError(
            f"The {label} volume looks like pure noise (neighbouring voxels correlate by {correlation:.2f}, "
            f"in an MR image by more than {MIN_NEIGHBOUR_CORRELATION:g}); check the file."
        )


def _neighbour_correlation(values: np.ndarray, spacing) -> float:
    """Correlation of neighbouring voxels along the finest axis, over voxel pairs with signal."""
    axis = int(np.argmin(spacing))
    moved = np.moveaxis(values, axis, 0)
    sampled = moved[:, :: max(1, moved.shape[1] // _SAMPLED_PLANES)]  # enough pairs, a fraction of the time
    first, second = sampled[:-1].astype(np.float64), sampled[1:].astype(np.float64)
    inside = (first != 0) & (second != 0)
    first, second = first[inside], second[inside]
    if first.size < 2 or first.std() == 0 or second.std() == 0:
        return 0.0
    return float(np.corrcoef(first, second)[0, 1])


def _label(name: str) -> str:
    return DISPLAY_NAMES.get(name, name)
