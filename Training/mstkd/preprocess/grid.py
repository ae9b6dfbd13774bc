"""The model grid (identity direction, the model's spacing, covering the reference) and resampling onto it.

The model grid lives in the reference's physical space, so going back to the reference is a
resampling with the identity transform: no transform has to be inverted.
"""

from __future__ import annotations

import itertools
from typing import Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from mstkd.errors import MSTKDError

IDENTITY_DIRECTION: Tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
# Spacing and direction this close (relative) to the model's count as equal: headers round them.
GRID_TOLERANCE = 1e-4
# A physical extent this close to a whole number of voxels is not rounded up to one more.
ROUNDING_SLACK = 1e-3


def check_spacing(spacing: Sequence[float]) -> Tuple[float, float, float]:
    """The model's spacing as three positive floats (mm), or MSTKDError."""
    values = tuple(float(s) for s in spacing)
    if len(values) != 3 or not all(np.isfinite(values)) or min(values) <= 0:
        raise MSTKDError(
            f"The model's voxel spacing must be three positive numbers in mm (e.g. 1,1,1); got {spacing}."
        )
    return values  # type: ignore[return-value]


def physical_corners(image: sitk.Image) -> np.ndarray:
    """The 8 outer corners (voxel edges, not centres) of an image's field of view, (8, 3) in mm."""
    size = image.GetSize()
    corners = [
        image.TransformContinuousIndexToPhysicalPoint([c - 0.5 for c in corner])
        for corner in itertools.product(*((0, s) for s in size))
    ]
    return np.asarray(corners, dtype=float)


def is_model_grid(image: sitk.Image, spacing: Sequence[float]) -> bool:
    """True when `image` already has identity direction and the model's spacing."""
    pairs = zip((*image.GetSpacing(), *image.GetDirection()), (*check_spacing(spacing), *IDENTITY_DIRECTION))
    return all(abs(x - y) <= GRID_TOLERANCE * max(1.0, abs(y)) for x, y in pairs)


def model_grid(reference: sitk.Image, spacing: Sequence[float]) -> sitk.Image:
    """A uint8 image of zeros on the model grid for `reference`.

    It is the reference's own grid when that already has identity direction and the model's
    spacing; otherwise an identity-direction grid at `spacing` whose voxels cover the bounding
    box of the reference's 8 corners, sizes rounded up, centred on that box.
    """
    spacing = check_spacing(spacing)
    grid = sitk.Image(reference.GetSize(), sitk.sitkUInt8)
    if is_model_grid(reference, spacing):
        grid.CopyInformation(reference)
        return grid
    corners = physical_corners(reference)
    low, high = corners.min(axis=0), corners.max(axis=0)
    steps = np.asarray(spacing)
    size = np.maximum(np.ceil((high - low) / steps - ROUNDING_SLACK), 1).astype(int)
    centre = (low + high) / 2
    origin = centre - steps * (size - 1) / 2
    grid = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
    grid.SetSpacing(spacing)
    grid.SetOrigin([float(o) for o in origin])
    grid.SetDirection(IDENTITY_DIRECTION)
    return grid


def resample(
    image: sitk.Image,
    grid: sitk.Image,
    transform: Optional[sitk.Transform] = None,
    interpolator: int = sitk.sitkLinear,
    pixel: int = sitk.sitkFloat32,
) -> sitk.Image:
    """`image` on `grid` (0 outside its field of view); `transform` maps grid points to image points."""
    chosen = transform if transform is not None else sitk.Transform(3, sitk.sitkIdentity)
    return sitk.Resample(image, grid, chosen, interpolator, 0.0, pixel)


def describe_spacing(spacing: Sequence[float]) -> str:
    """'1x1x1' style text of a spacing."""
    return "x".join(f"{s:g}" for s in spacing)
