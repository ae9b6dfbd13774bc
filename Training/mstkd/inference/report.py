"""A picture of a segmentation: the sequences used, the prediction and the ground truth, in three views.

Drawn like the phantom preview (mstkd.figures), so both pictures read the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional

import SimpleITK as sitk

from mstkd.conventions import DISPLAY_NAMES, sequence_map
from mstkd.figures import save_slice_grid
from mstkd.imageio import PathLike, same_grid


def save_segmentation_preview(
    images: Mapping[str, sitk.Image],
    predicted: sitk.Image,
    convention: str,
    path: PathLike,
    truth: Optional[sitk.Image] = None,
) -> Path:
    """Write a PNG: a column per sequence used, then the prediction and (if given) the ground truth.

    The labels are drawn over the first sequence used; every image must lie on `predicted`'s grid.
    """
    images = sequence_map(images)
    used = list(images)
    for sequence, image in images.items():
        if not same_grid(image, predicted):
            raise ValueError(f"{sequence} is not on the label map's grid; resample it first")
    volumes = {s: sitk.GetArrayFromImage(image) for s, image in images.items()}
    label_maps = [("prediction", sitk.GetArrayFromImage(predicted))]
    if truth is not None:
        label_maps.append(("ground truth", sitk.GetArrayFromImage(truth)))

    background = used[0]
    columns = [(DISPLAY_NAMES[s], volumes[s], None) for s in used]
    columns += [
        (f"{name} on {DISPLAY_NAMES[background]}", volumes[background], labels) for name, labels in label_maps
    ]
    return save_slice_grid(columns, label_maps[-1][1], predicted.GetSpacing(), convention, path)
