"""The BraTS image grid (SRI24 space, 1 mm, LPS) and the coarser grids of small phantoms.

A small phantom keeps the BraTS field of view and the brain's physical size: its voxels are
isotropic and as coarse as needed for the requested size to cover 240 x 240 x 155 mm, and the
grid is centred where the BraTS grid is. 240 x 240 x 155 gives the BraTS grid exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from mstkd.errors import MSTKDError

# Size (x, y, z), spacing and origin of every BraTS image as SimpleITK reports them.
BRATS_SIZE: Tuple[int, int, int] = (240, 240, 155)
BRATS_SPACING_MM = 1.0
BRATS_ORIGIN: Tuple[float, float, float] = (0.0, -239.0, 0.0)
LPS_DIRECTION: Tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

# Below this many voxels per axis the brain is a blur of a few voxels; above, memory runs out.
MIN_SIZE = 24
MAX_SIZE = 512


@dataclass(frozen=True)
class Grid:
    """An axis-aligned LPS image grid: size and spacing in (x, y, z), origin in millimetres."""

    size: Tuple[int, int, int]
    spacing: Tuple[float, float, float]
    origin: Tuple[float, float, float]

    @property
    def shape(self) -> Tuple[int, int, int]:
        """The numpy shape of SimpleITK's arrays on this grid: (z, y, x)."""
        return (self.size[2], self.size[1], self.size[0])

    @property
    def centre(self) -> np.ndarray:
        """Physical (x, y, z) position of the grid's centre."""
        return np.asarray(self.origin) + np.asarray(self.spacing) * (np.asarray(self.size) - 1) / 2

    @property
    def voxel_mm(self) -> float:
        """The (isotropic) voxel size."""
        return float(self.spacing[0])

    def image(self, array: np.ndarray) -> sitk.Image:
        """A SimpleITK image of a (z, y, x) array on this grid."""
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(LPS_DIRECTION)
        return image


def brats_grid(size: Sequence[int] = BRATS_SIZE) -> Grid:
    """The grid of that size covering the BraTS field of view with isotropic voxels."""
    size = check_size(size)
    field_of_view = np.asarray(BRATS_SIZE) * BRATS_SPACING_MM
    spacing = float(np.max(field_of_view / np.asarray(size)))
    brats_centre = np.asarray(BRATS_ORIGIN) + BRATS_SPACING_MM * (np.asarray(BRATS_SIZE) - 1) / 2
    origin = brats_centre - spacing * (np.asarray(size) - 1) / 2
    return Grid(tuple(size), (spacing,) * 3, tuple(float(o) for o in origin))


def check_size(size: Sequence[int]) -> Tuple[int, int, int]:
    """Return a valid (x, y, z) grid size as a tuple, or raise saying what is allowed."""
    values = tuple(int(s) for s in size)
    if len(values) != 3 or any(s < MIN_SIZE or s > MAX_SIZE for s in values):
        raise MSTKDError(
            f"A phantom's shape is three sizes x,y,z between {MIN_SIZE} and {MAX_SIZE} voxels "
            f"(e.g. 240,240,155 or 96,96,64); got {','.join(str(v) for v in values)}."
        )
    return values  # type: ignore[return-value]


def parse_size(text: str) -> Tuple[int, int, int]:
    """Parse 'X,Y,Z' (also 'XxYxZ') into a valid grid size."""
    parts = [p for p in re.split(r"[,x\s]+", text.strip().lower()) if p]
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise MSTKDError(f"--shape takes three whole numbers such as 240,240,155; got '{text}'.")
    return check_size([int(p) for p in parts])


# A block of a grid as numpy slices in (z, y, x) order.
Box = Tuple[slice, slice, slice]


def box_around(grid: Grid, lower_mm: np.ndarray, upper_mm: np.ndarray) -> Box:
    """The block of voxels whose centres lie between two physical (x, y, z) corners, clipped to the grid."""
    origin, spacing = np.asarray(grid.origin), np.asarray(grid.spacing)
    first = np.clip(np.floor((lower_mm - origin) / spacing).astype(int), 0, np.asarray(grid.size) - 1)
    last = np.clip(np.ceil((upper_mm - origin) / spacing).astype(int), 0, np.asarray(grid.size) - 1)
    return tuple(slice(int(first[axis]), int(last[axis]) + 1) for axis in (2, 1, 0))  # type: ignore[return-value]


def intersect(a: Box, b: Box) -> Box:
    """The voxels two boxes share (both must overlap)."""
    return tuple(slice(max(p.start, q.start), min(p.stop, q.stop)) for p, q in zip(a, b))  # type: ignore[return-value]


def box_shape(box: Box) -> Tuple[int, int, int]:
    """The (z, y, x) shape of a box."""
    return tuple(s.stop - s.start for s in box)  # type: ignore[return-value]


def sub_box(outer: Box, inner: Box) -> Box:
    """`inner` (grid coordinates) relative to `outer`, for indexing arrays that cover `outer`."""
    return tuple(slice(i.start - o.start, i.stop - o.start) for o, i in zip(outer, inner))  # type: ignore[return-value]


def box_axes_mm(grid: Grid, box: Box) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Physical x, y and z of a box's voxel centres, shaped to broadcast over its (z, y, x) array."""
    z, y, x = (
        (grid.origin[axis] + grid.spacing[axis] * np.arange(s.start, s.stop)).astype(np.float32)
        for axis, s in zip((2, 1, 0), box)
    )
    return x[None, None, :], y[None, :, None], z[:, None, None]
