"""Slice pictures of an exam: axial, coronal and sagittal views through the tumour, labels overlaid.

The phantom preview and the segmentation report draw with this one function, so they read alike.
Arrays here are SimpleITK's (z, y, x) of LPS images, the order the views are cut in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np

from mstkd.boxes import bounding_box, grown
from mstkd.conventions import SUBREGION_COLOURS, label_convention
from mstkd.files import PathLike, write_verified

# Display window: these percentiles of the brain's intensities map to black and white.
WINDOW_PERCENTILES = (0.5, 99.5)
LABEL_ALPHA = 0.45
PANEL_INCHES = 2.0
DOTS_PER_INCH = 80
CROP_MARGIN_VOXELS = 3
# The PNG text field that marks a picture as mstkd's, so a later run may replace it.
MARK_FIELD, MARK = "Software", "mstkd figure"

# A column of the picture: its title, the grey image, and labels to overlay (or None).
Column = Tuple[str, np.ndarray, Optional[np.ndarray]]


def save_slice_grid(
    columns: Sequence[Column],
    centre_on: np.ndarray,
    spacing_xyz: Sequence[float],
    convention: str,
    path: PathLike,
) -> Path:
    """Write a PNG with one column per entry and one row per view, centred on `centre_on`'s labels."""
    # A bare Figure renders with Agg and leaves pyplot's global backend alone (notebooks, Slicer);
    # imported here so that code paths without pictures never load matplotlib.
    from matplotlib.figure import Figure

    tumour = np.argwhere(centre_on > 0)
    centre = tuple(int(c) for c in (tumour.mean(axis=0) if len(tumour) else np.array(centre_on.shape) / 2))
    content = np.any([volume != 0 for _, volume, _ in columns], axis=0)
    crop = grown(bounding_box(content), CROP_MARGIN_VOXELS, content.shape) or (slice(None),) * content.ndim
    sz, sy, sx = tuple(spacing_xyz)[::-1]
    aspects = (sy / sx, sz / sx, sz / sy)
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
    return write_verified(
        path,
        lambda staged: figure.savefig(
            staged, dpi=DOTS_PER_INCH, facecolor="black", format="png", metadata={MARK_FIELD: MARK}
        ),
    )


def is_our_picture(path: PathLike) -> bool:
    """True for a PNG written by `save_slice_grid`."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            return picture.info.get(MARK_FIELD) == MARK
    except (OSError, UnidentifiedImageError):
        return False


def _slices(
    volume: np.ndarray, centre: Tuple[int, ...], crop: Tuple[slice, ...]
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Axial, coronal and sagittal slices of a (z, y, x) LPS array, as radiologists view them."""
    z, y, x = centre
    cz, cy, cx = crop
    # Axial: front at the top, the patient's right on the left (radiological view).
    axial = volume[z, cy, cx]
    # Coronal and sagittal: head up.
    coronal = volume[cz, y, cx][::-1]
    sagittal = volume[cz, cy, x][::-1]
    return axial, coronal, sagittal


def _overlay(labels: np.ndarray, convention_name: str) -> np.ndarray:
    """An RGBA image colouring each sub-region."""
    rgba = np.zeros(labels.shape + (4,), dtype=np.float32)
    for region, value in label_convention(convention_name).values.items():
        if region in SUBREGION_COLOURS:
            rgba[labels == value] = (*SUBREGION_COLOURS[region], LABEL_ALPHA)
    return rgba
