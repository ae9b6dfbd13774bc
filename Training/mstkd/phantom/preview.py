"""A picture of a phantom: axial, coronal and sagittal slices through the tumour, per sequence."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import SimpleITK as sitk

from mstkd.conventions import DISPLAY_NAMES, SEQUENCES
from mstkd.figures import save_slice_grid
from mstkd.imageio import PathLike

if TYPE_CHECKING:
    from mstkd.phantom.generate import PhantomCase


def save_preview(case: PhantomCase, path: PathLike) -> Path:
    """Write a PNG: one column per sequence plus the labels over T1ce, one row per view."""
    labels = sitk.GetArrayFromImage(case.labels)
    volumes = {s: sitk.GetArrayFromImage(case.images[s]) for s in SEQUENCES}
    columns = [(DISPLAY_NAMES[s], volumes[s], None) for s in SEQUENCES]
    columns.append((f"labels on {DISPLAY_NAMES['t1ce']}", volumes["t1ce"], labels))
    return save_slice_grid(columns, labels, case.labels.GetSpacing(), case.convention, path)
