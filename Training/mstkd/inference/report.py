"""A picture of a segmentation: the sequences used, the prediction and the ground truth, in three views.

Drawn with the phantom preview's slicing, window and colours, so both pictures read the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Mapping, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from mstkd.conventions import DISPLAY_NAMES, SEQUENCES
from mstkd.imageio import PathLike, same_grid
from mstkd.phantom.preview import (
    DOTS_PER_INCH,
    PANEL_INCHES,
    WINDOW_PERCENTILES,
    _brain_box,
    _overlay,
    _slices,
)


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
    from matplotlib.figure import Figure  # Agg through a bare Figure: pyplot's backend is left alone

    used = [s for s in SEQUENCES if s in images]
    for sequence in used:
        if not same_grid(images[sequence], predicted):
            raise ValueError(f"{sequence} is not on the label map's grid; resample it first")
    volumes = {s: sitk.GetArrayFromImage(images[s]) for s in used}
    label_maps = [("prediction", sitk.GetArrayFromImage(predicted))]
    if truth is not None:
        label_maps.append(("ground truth", sitk.GetArrayFromImage(truth)))

    centred_on = label_maps[-1][1]
    tumour = np.argwhere(centred_on > 0)
    centre = tuple(int(c) for c in (tumour.mean(axis=0) if len(tumour) else np.array(centred_on.shape) / 2))
    crop = _brain_box(np.any([v != 0 for v in volumes.values()], axis=0))
    spacing_zyx = predicted.GetSpacing()[::-1]
    aspects = (
        spacing_zyx[1] / spacing_zyx[2],
        spacing_zyx[0] / spacing_zyx[2],
        spacing_zyx[0] / spacing_zyx[1],
    )
    background = used[0]
    columns: List[Tuple[str, np.ndarray, Optional[np.ndarray]]] = [
        (DISPLAY_NAMES[s], volumes[s], None) for s in used
    ]
    columns += [
        (f"{name} on {DISPLAY_NAMES[background]}", volumes[background], labels) for name, labels in label_maps
    ]

    figure = Figure(figsize=(PANEL_INCHES * len(columns), PANEL_INCHES * 3), facecolor="black")
    axes = figure.subplots(3, len(columns), squeeze=False)
    for column, (title, volume, labels) in enumerate(columns):
        inside = volume[volume != 0]
        low, high = np.percentile(inside, WINDOW_PERCENTILES) if inside.size else (0.0, 1.0)
        overlays = _slices(labels, centre, crop) if labels is not None else (None,) * 3
        for row, (picture, overlay) in enumerate(zip(_slices(volume, centre, crop), overlays)):
            axis = axes[row, column]
            axis.imshow(picture, cmap="gray", vmin=low, vmax=high, aspect=aspects[row], interpolation="none")
            if overlay is not None:
                axis.imshow(_overlay(overlay, convention), aspect=aspects[row], interpolation="none")
            axis.set_axis_off()
        axes[0, column].set_title(title, fontsize=9, color="white")
    figure.subplots_adjust(left=0.01, right=0.99, top=0.93, bottom=0.01, wspace=0.03, hspace=0.03)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DOTS_PER_INCH, facecolor="black")
    return path
