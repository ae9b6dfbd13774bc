"""A picture of a phantom: axial, coronal and sagittal slices through the tumour, per sequence."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Tuple

import numpy as np
import SimpleITK as sitk

from mstkd.conventions import DISPLAY_NAMES, SEQUENCES, label_convention
from mstkd.imageio import PathLike

if TYPE_CHECKING:
    from mstkd.phantom.generate import PhantomCase

# Display window: these percentiles of the brain's intensities map to black and white.
WINDOW_PERCENTILES = (0.5, 99.5)
# BraTS colours: necrosis red, oedema green, enhancing tumour yellow.
REGION_COLOURS = {"ncr": (0.9, 0.1, 0.1), "ed": (0.1, 0.8, 0.2), "et": (1.0, 0.9, 0.1)}
LABEL_ALPHA = 0.45
PANEL_INCHES = 2.0
DOTS_PER_INCH = 80
CROP_MARGIN_VOXELS = 3


def _slices(
    volume: np.ndarray, centre: Tuple[int, int, int], crop: Tuple[slice, ...]
) -> Tuple[np.ndarray, ...]:
    """Axial, coronal and sagittal slices of a (z, y, x) LPS array, as radiologists view them."""
    z, y, x = centre
    cz, cy, cx = crop
    # Axial: front at the top, the patient's right on the left (radiological view).
    axial = volume[z, cy, cx]
    # Coronal and sagittal: head up.
    coronal = volume[cz, y, cx][::-1]
    sagittal = volume[cz, cy, x][::-1]
    return axial, coronal, sagittal


def _brain_box(volume: np.ndarray) -> Tuple[slice, ...]:
    """The bounding box of the non-zero voxels, with a small margin."""
    where = np.nonzero(volume)
    return tuple(
        slice(max(int(a.min()) - CROP_MARGIN_VOXELS, 0), min(int(a.max()) + CROP_MARGIN_VOXELS + 1, n))
        for a, n in zip(where, volume.shape)
    )


def _overlay(labels: np.ndarray, convention_name: str) -> np.ndarray:
    """An RGBA image colouring each sub-region."""
    rgba = np.zeros(labels.shape + (4,), dtype=np.float32)
    for region, value in label_convention(convention_name).values.items():
        if region in REGION_COLOURS:
            rgba[labels == value] = (*REGION_COLOURS[region], LABEL_ALPHA)
    return rgba


def save_preview(case: PhantomCase, path: PathLike) -> Path:
    """Write a PNG: one column per sequence plus the labels over T1ce, one row per view."""
    # A bare Figure renders with Agg and leaves pyplot's global backend alone (notebooks, Slicer);
    # imported here so that generating without previews never loads matplotlib.
    from matplotlib.figure import Figure

    labels = sitk.GetArrayFromImage(case.labels)
    tumour = np.argwhere(labels > 0)
    centre = tuple(int(c) for c in (tumour.mean(axis=0) if len(tumour) else np.array(labels.shape) / 2))
    spacing_zyx = case.labels.GetSpacing()[::-1]
    aspects = (
        spacing_zyx[1] / spacing_zyx[2],
        spacing_zyx[0] / spacing_zyx[2],
        spacing_zyx[0] / spacing_zyx[1],
    )
    crop = _brain_box(sitk.GetArrayFromImage(case.images["t1"]))
    overlays = _slices(labels, centre, crop)
    columns = [*SEQUENCES, "labels"]
    figure = Figure(figsize=(PANEL_INCHES * len(columns), PANEL_INCHES * 3), facecolor="black")
    axes = figure.subplots(3, len(columns), squeeze=False)
    for column, name in enumerate(columns):
        volume = sitk.GetArrayFromImage(case.images["t1ce" if name == "labels" else name])
        low, high = np.percentile(volume[volume > 0], WINDOW_PERCENTILES)
        for row, picture in enumerate(_slices(volume, centre, crop)):
            axis = axes[row, column]
            axis.imshow(picture, cmap="gray", vmin=low, vmax=high, aspect=aspects[row], interpolation="none")
            if name == "labels":
                axis.imshow(
                    _overlay(overlays[row], case.convention), aspect=aspects[row], interpolation="none"
                )
            axis.set_axis_off()
        title = "labels on T1Gd" if name == "labels" else DISPLAY_NAMES[name]
        axes[0, column].set_title(title, fontsize=9, color="white")
    figure.subplots_adjust(left=0.01, right=0.99, top=0.93, bottom=0.01, wspace=0.03, hspace=0.03)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DOTS_PER_INCH, facecolor="black")
    return path
