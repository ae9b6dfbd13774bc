"""A head around a phantom's brain: extra-axial CSF, skull, scalp and neck, as an unstripped scan shows them.

The skull follows the brain with its sulci and notches filled (the hull, CSF in between); the
cranium's shells lie at per-case random distances from that hull: cerebrospinal fluid, the inner
table (cortical bone), the diploe (fatty marrow) and the outer table; an elliptic column of neck
muscle rises under the brain stem into the skull base; scalp fat and skin wrap both. The grid
grows by HEAD_PADDING_MM around the BraTS field of view (same centre and spacing), so that the
vertex and the top of the neck fit in it, as in a clinical 3D acquisition.

Contrast follows what radiologists read: fat (scalp, marrow) bright on T1 and T2 and fairly
bright on FLAIR, cortical bone dark everywhere, muscle intermediate on T1 and dark on T2.
What such a head is not: there is no face, no eyes, sinuses, ears, vessels, dura or vertebrae;
the skull's shape follows the brain's (a real skull is rounder); layers are even in thickness.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np
import SimpleITK as sitk

from mstkd.conventions import SEQUENCES
from mstkd.phantom.artefacts import acquire
from mstkd.phantom.grid import Box, Grid

# Room added around the BraTS field of view (x, y, z): the brain fills its 155 mm from top to
# bottom, so the vertex needs room above and the neck below.
HEAD_PADDING_MM: Tuple[float, float, float] = (10.0, 10.0, 50.0)

# The skull follows the brain with its sulci and notches filled: the brain mask blurred by this
# Gaussian sigma (mm) and thresholded; what lies between it and the brain is CSF.
HULL_SIGMA_MM = 4.0
HULL_LEVEL = 0.3
# The cranium's shells outward from that hull, innermost first, with per-case thickness ranges (mm).
CRANIUM: Tuple[Tuple[str, Tuple[float, float]], ...] = (
    ("csf", (1.5, 3.5)),
    ("bone", (1.5, 2.5)),  # inner table
    ("marrow", (2.0, 4.0)),  # diploe
    ("bone", (1.5, 2.5)),  # outer table
)
# The scalp around the cranium and the neck.
SCALP_FAT_MM = (3.0, 6.0)
SKIN_MM = (1.0, 2.0)
# The neck: an elliptic column of muscle (half-axes LR, AP in mm) under the brain stem, behind its
# axis by NECK_SHIFT_MM, reaching this far up into the skull base; cranium and neck are joined
# by blurring their union by BODY_SIGMA_MM (mm).
NECK_HALF_AXES_MM = ((40.0, 48.0), (36.0, 44.0))
NECK_SHIFT_MM = 10.0
NECK_TOP_ABOVE_BRAIN_BOTTOM_MM = 30.0
BODY_SIGMA_MM = 6.0
BODY_LEVEL = 0.5
# The brain stem's axis is found in the lowest slab of the brain this thick.
STEM_SLAB_MM = 10.0

# Relative signals (white matter on T1 = 1, as in mstkd.phantom.contrast); CSF takes the case's own.
HEAD_SIGNAL: Dict[str, Dict[str, float]] = {
    "flair": {"bone": 0.03, "marrow": 0.62, "fat": 0.78, "muscle": 0.36, "skin": 0.45},
    "t1": {"bone": 0.03, "marrow": 1.10, "fat": 1.35, "muscle": 0.55, "skin": 0.62},
    "t1ce": {"bone": 0.03, "marrow": 1.10, "fat": 1.35, "muscle": 0.62, "skin": 0.68},
    "t2": {"bone": 0.03, "marrow": 0.72, "fat": 0.88, "muscle": 0.30, "skin": 0.45},
}
HEAD_TISSUES: Tuple[str, ...] = ("csf", "bone", "marrow", "fat", "muscle", "skin")
SIGNAL_VARIATION = 0.05


@dataclass(frozen=True)
class Head:
    """The tissue of every voxel outside the brain: an index into HEAD_TISSUES, -1 for air."""

    tissue: np.ndarray  # (z, y, x) int8

    def signal(self, values: Dict[str, float]) -> np.ndarray:
        """A (z, y, x) float32 signal: each head tissue's value, 0 in the air and in the brain."""
        table = np.zeros(len(HEAD_TISSUES) + 1, dtype=np.float32)
        for index, name in enumerate(HEAD_TISSUES):
            table[index] = values[name]
        return table[self.tissue]  # index -1 reads the last entry, 0: air


def head_grid(grid: Grid) -> Grid:
    """`grid` grown by HEAD_PADDING_MM on every side (whole voxels), with the same centre and spacing."""
    pad = np.ceil(np.asarray(HEAD_PADDING_MM) / np.asarray(grid.spacing)).astype(int)
    size = tuple(int(s) for s in np.asarray(grid.size) + 2 * pad)
    origin = tuple(float(o) for o in np.asarray(grid.origin) - pad * np.asarray(grid.spacing))
    return Grid(size, grid.spacing, origin)  # type: ignore[arg-type]


def grow_head(rng: np.random.Generator, brain: np.ndarray, spacing: Tuple[float, float, float]) -> Head:
    """The head around a (z, y, x) brain mask on a grid of `spacing` (x, y, z) mm."""
    sampling = tuple(float(s) for s in spacing[::-1])
    hull = _blurred(brain, HULL_SIGMA_MM, spacing) > HULL_LEVEL
    from_hull = _distance_outside(hull, spacing)
    shells = []
    inner = 0.0
    for name, (low, high) in CRANIUM:
        outer = inner + float(rng.uniform(low, high))
        shells.append((name, inner, outer))
        inner = outer
    neck = _neck_column(rng, brain, sampling)
    body = _blurred((from_hull <= inner) | neck, BODY_SIGMA_MM, spacing) > BODY_LEVEL
    from_body = _distance_outside(body, spacing)
    fat = float(rng.uniform(*SCALP_FAT_MM))
    skin = fat + float(rng.uniform(*SKIN_MM))

    tissue = np.full(brain.shape, -1, dtype=np.int8)
    tissue[body] = HEAD_TISSUES.index("muscle")
    tissue[(from_body > 0) & (from_body <= fat)] = HEAD_TISSUES.index("fat")
    tissue[(from_body > fat) & (from_body <= skin)] = HEAD_TISSUES.index("skin")
    for name, low, high in shells:
        tissue[(from_hull > low) & (from_hull <= high)] = HEAD_TISSUES.index(name)
    tissue[hull] = HEAD_TISSUES.index("csf")
    tissue[brain] = -1
    return Head(tissue)


def _image(mask: np.ndarray, spacing: Tuple[float, float, float]) -> sitk.Image:
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing([float(s) for s in spacing])
    return image


def _blurred(mask: np.ndarray, sigma_mm: float, spacing: Tuple[float, float, float]) -> np.ndarray:
    """A (z, y, x) mask blurred by a Gaussian of `sigma_mm` (SimpleITK's recursive filter: fast)."""
    image = sitk.Cast(_image(mask, spacing), sitk.sitkFloat32)
    return sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(image, sigma_mm))


def _distance_outside(mask: np.ndarray, spacing: Tuple[float, float, float]) -> np.ndarray:
    """Each voxel's distance (mm) to the mask, 0 inside it (Maurer's exact transform: fast)."""
    signed = sitk.SignedMaurerDistanceMap(
        _image(mask, spacing), insideIsPositive=False, squaredDistance=False, useImageSpacing=True
    )
    return np.maximum(sitk.GetArrayFromImage(signed), 0.0)


def _neck_column(rng: np.random.Generator, brain: np.ndarray, sampling: Tuple[float, ...]) -> np.ndarray:
    """(z, y, x) bool: an elliptic column under the brain stem, from the grid's bottom into the skull base."""
    dz, dy, dx = sampling
    bottom = int(np.nonzero(brain.any(axis=(1, 2)))[0][0])
    slab = brain[bottom : bottom + max(1, int(round(STEM_SLAB_MM / dz)))]
    _, ys, xs = np.nonzero(slab)
    y = np.arange(brain.shape[1], dtype=np.float32)[:, None] * dy - (float(ys.mean()) * dy + NECK_SHIFT_MM)
    x = np.arange(brain.shape[2], dtype=np.float32)[None, :] * dx - float(xs.mean()) * dx
    half_x, half_y = (float(rng.uniform(*axis)) for axis in NECK_HALF_AXES_MM)
    section = (x / half_x) ** 2 + (y / half_y) ** 2 <= 1.0
    column = np.zeros(brain.shape, dtype=bool)
    column[: bottom + int(round(NECK_TOP_ABOVE_BRAIN_BOTTOM_MM / dz))] = section
    return column


def scan_with_head(
    rng: np.random.Generator,
    sequence: str,
    brain_signal: np.ndarray,
    crop: Box,
    head: Head,
    values: Dict[str, float],
    brain: np.ndarray,
) -> np.ndarray:
    """Scan a brain's signal (on the block `crop` of the grid) inside its head: every voxel is covered.

    Blur, bias and noise span the whole field of view, so the air reads Rician noise (never
    exactly 0) and the skull's signal bleeds into the brain's edge as on a real scan; the noise
    level is relative to the brain's signal (`brain`: the grid's brain mask).
    """
    signal = head.signal(values)
    signal[crop] += brain_signal
    return acquire(rng, sequence, signal, np.ones(signal.shape, dtype=bool), 0.0, noise_reference=brain)


def head_signals(rng: np.random.Generator, csf: Dict[str, float]) -> Dict[str, Dict[str, float]]:
    """One case's signal of every head tissue on every sequence; `csf` is the case's CSF signal."""
    return {
        sequence: {
            **{
                name: value * float(1.0 + SIGNAL_VARIATION * rng.standard_normal())
                for name, value in HEAD_SIGNAL[sequence].items()
            },
            "csf": csf[sequence],
        }
        for sequence in SEQUENCES
    }
