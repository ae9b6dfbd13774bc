"""A clinical exam of a phantom: each sequence on its own scanner grid, not co-registered.

Each sequence is acquired as its protocol says (spacing, orientation, field of view) after the
patient moved a little (a rigid turn of a few degrees and shift of a few millimetres, different
per sequence), with the slice profile's blur for thick slices, then skull-stripped on its own
grid, as a brain extraction tool would (so thick slices do not smear a halo of dim voxels around
the brain): only grids, orientations, positions and coverage differ from the BraTS-grid images.
The ground truth is acquired with the T1ce (same grid and motion), so it lies on the T1ce grid
voxel for voxel. On a coarse phantom grid all spacings grow by the phantom's voxel size (fields
of view stay).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial.transform import Rotation

from mstkd.phantom.grid import Grid

# Direction matrices (columns: where the image's i, j, k axes point in LPS).
AXIAL_LPS = np.eye(3)
AXIAL_RAS = np.diag([-1.0, -1.0, 1.0])
# Rows run front to back, columns top to bottom, slices right to left.
SAGITTAL = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
# Axial slices tilted along the AC-PC line and turned a little, as technologists plan them.
OBLIQUE_DEGREES = (14.0, 0.0, 6.0)
OBLIQUE = Rotation.from_euler("xyz", OBLIQUE_DEGREES, degrees=True).as_matrix()


@dataclass(frozen=True)
class Protocol:
    """How a sequence is acquired: voxel spacing (i, j, k), axis directions and field of view (mm)."""

    spacing_mm: Tuple[float, float, float]
    direction: np.ndarray
    field_of_view_mm: Tuple[float, float, float]


PROTOCOLS: Dict[str, Protocol] = {
    "flair": Protocol((1.0, 1.0, 5.0), AXIAL_LPS, (230.0, 230.0, 150.0)),
    "t1": Protocol((1.0, 1.0, 1.2), SAGITTAL, (256.0, 240.0, 180.0)),
    "t1ce": Protocol((1.0, 1.0, 1.0), OBLIQUE, (250.0, 250.0, 176.0)),
    "t2": Protocol((0.5, 0.5, 4.0), AXIAL_RAS, (220.0, 220.0, 160.0)),
}
REFERENCE_SEQUENCE = "t1ce"
MOTION_DEGREES = 3.0
MOTION_MM = 3.0
FIELD_OF_VIEW_SHIFT_MM = 8.0
FWHM_PER_SIGMA = 2.355
# Slice-profile blur smaller than this (in voxels of the phantom grid) is not worth a filter.
MIN_PROFILE_BLUR_VOXELS = 0.3


def native_reference(protocol: Protocol, centre_mm: np.ndarray, voxel_mm: float) -> sitk.Image:
    """An empty image with the protocol's grid centred at `centre_mm` (x, y, z)."""
    spacing = np.asarray(protocol.spacing_mm) * voxel_mm
    size = np.maximum(np.rint(np.asarray(protocol.field_of_view_mm) / spacing).astype(int), 2)
    origin = centre_mm - protocol.direction @ (spacing * (size - 1) / 2)
    reference = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
    reference.SetSpacing([float(s) for s in spacing])
    reference.SetOrigin([float(o) for o in origin])
    reference.SetDirection([float(d) for d in protocol.direction.ravel()])
    return reference


def patient_motion(rng: np.random.Generator, centre_mm: np.ndarray) -> sitk.Euler3DTransform:
    """A small rigid motion about the brain's centre (maps scanner positions to phantom positions)."""
    motion = sitk.Euler3DTransform()
    motion.SetCenter([float(c) for c in centre_mm])
    angles = np.deg2rad(rng.uniform(-MOTION_DEGREES, MOTION_DEGREES, size=3))
    motion.SetRotation(*(float(a) for a in angles))
    motion.SetTranslation([float(t) for t in rng.uniform(-MOTION_MM, MOTION_MM, size=3)])
    return motion


def _slice_profile(image: sitk.Image, protocol: Protocol, voxel_mm: float) -> sitk.Image:
    """Blur along the phantom axis closest to the slice direction, as thick slices average."""
    thickness = protocol.spacing_mm[2] * voxel_mm
    sigma = np.sqrt(max(thickness**2 - voxel_mm**2, 0.0)) / FWHM_PER_SIGMA / voxel_mm
    if sigma < MIN_PROFILE_BLUR_VOXELS:
        return sitk.Cast(image, sitk.sitkFloat32)
    axis_xyz = int(np.argmax(np.abs(protocol.direction[:, 2])))
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    blurred = sitk.GetImageFromArray(ndimage.gaussian_filter1d(array, sigma, axis=2 - axis_xyz))
    blurred.CopyInformation(image)
    return blurred


def acquire_native(
    rng: np.random.Generator,
    images: Dict[str, sitk.Image],
    labels: sitk.Image,
    grid: Grid,
    strip: bool = True,
) -> Tuple[Dict[str, sitk.Image], sitk.Image, Dict[str, sitk.Euler3DTransform]]:
    """Each sequence on its clinical grid (int16), the labels on the T1ce grid, and each motion.

    A sequence's motion maps its scanner points to phantom (BraTS-grid) points: the answer a
    registration of two sequences has to find is one motion followed by the other's inverse.
    `strip=False` keeps everything the images show (a phantom with a head).
    """
    native: Dict[str, sitk.Image] = {}
    motions: Dict[str, sitk.Euler3DTransform] = {}
    native_labels = None
    # Phantom images are 0 outside the brain, the same brain in every sequence.
    brain = sitk.Cast(sitk.NotEqual(images[REFERENCE_SEQUENCE], 0), sitk.sitkFloat32)
    for sequence, image in images.items():
        protocol = PROTOCOLS[sequence]
        centre = grid.centre + rng.uniform(-FIELD_OF_VIEW_SHIFT_MM, FIELD_OF_VIEW_SHIFT_MM, size=3)
        reference = native_reference(protocol, centre, grid.voxel_mm)
        motion = motions[sequence] = patient_motion(rng, grid.centre)
        source = _slice_profile(image, protocol, grid.voxel_mm)
        scanned = sitk.GetArrayFromImage(
            sitk.Resample(source, reference, motion, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        )
        if strip:
            inside = sitk.Resample(brain, reference, motion, sitk.sitkLinear, 0.0)
            scanned = np.where(sitk.GetArrayFromImage(inside) >= 0.5, scanned, 0)
        rounded = sitk.GetImageFromArray(np.rint(scanned).astype(np.int16))
        rounded.CopyInformation(reference)
        native[sequence] = rounded
        if sequence == REFERENCE_SEQUENCE:
            native_labels = sitk.Resample(
                labels, reference, motion, sitk.sitkNearestNeighbor, 0, labels.GetPixelID()
            )
    return native, native_labels, motions
