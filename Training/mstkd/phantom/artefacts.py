"""What makes one subject and one scan differ from another: anatomy deformation and acquisition artefacts.

Anatomy: the template brain is scaled (SRI24 brains are smaller than MNI152 2009a's), turned by
a few degrees and smoothly deformed. Acquisition, per sequence: partial-volume blur (more across
slices for FLAIR, T1 and T2, which BraTS often resampled from thick 2-D slices), a smooth
multiplicative bias field, Rician noise, and the scanner's arbitrary scale and offset, rounded to
integers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from mstkd.phantom.fields import TRUNCATE_SIGMAS, cosine_field

BRAIN_SCALE = (0.9, 0.96)
HEAD_TILT_DEGREES = 4.0
DEFORMATION_MM = (1.0, 3.0)  # standard deviation of the smooth displacement, per component
DEFORMATION_FREQUENCIES = 5

IN_PLANE_BLUR_VOXELS = 0.5
SLICE_BLUR_VOXELS: Dict[str, Tuple[float, float]] = {
    "flair": (0.5, 1.6),
    "t1": (0.5, 1.6),
    "t1ce": (0.4, 0.7),
    "t2": (0.5, 1.2),
}
BIAS_STRENGTH = (0.03, 0.1)  # standard deviation of the log bias field
BIAS_FREQUENCIES = 3
NOISE_FRACTION = (0.015, 0.05)  # Rician sigma relative to the median brain signal
# The median brain signal is estimated on every n-th brain voxel.
MEDIAN_SUBSAMPLING = 16
SCANNER_SCALE = (150.0, 2500.0)  # drawn log-uniformly
SCANNER_OFFSET = (0.0, 0.05)  # relative to the scale


@dataclass(frozen=True)
class Deformation:
    """Subject = template scaled by `scale` and turned by `rotation` about the brain's centre, then warped."""

    scale: float
    rotation: np.ndarray
    displacement_mm: np.ndarray  # (3, z, y, x) over the block being sampled, added in template space

    def to_subject(
        self, template_mm: np.ndarray, template_centre: np.ndarray, subject_centre: np.ndarray
    ) -> np.ndarray:
        """Approximate subject position of (n, 3) template positions (the smooth warp left out)."""
        return subject_centre + self.scale * (template_mm - template_centre) @ self.rotation

    def to_template(
        self,
        subject_mm: Tuple[np.ndarray, np.ndarray, np.ndarray],
        template_centre: np.ndarray,
        subject_centre: np.ndarray,
    ) -> np.ndarray:
        """Template position (3, z, y, x) of each subject voxel, given its (x, y, z) broadcastable axes."""
        matrix = (self.rotation / self.scale).astype(np.float32)
        offsets = [axis - np.float32(c) for axis, c in zip(subject_mm, subject_centre)]
        out = self.displacement_mm.copy()
        for row in range(3):
            out[row] += np.float32(template_centre[row])
            for column in range(3):
                out[row] += matrix[row, column] * offsets[column]
        return out


def random_deformation(rng: np.random.Generator, shape: Tuple[int, int, int], scale: float) -> Deformation:
    """A subject's brain: the given scale, a small head tilt and a smooth warp over a block of `shape`."""
    axis = rng.standard_normal(3)
    angle = np.deg2rad(rng.uniform(-HEAD_TILT_DEGREES, HEAD_TILT_DEGREES))
    rotation = Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle).as_matrix()
    amplitude = rng.uniform(*DEFORMATION_MM)
    displacement = np.stack(
        [cosine_field(rng, shape, DEFORMATION_FREQUENCIES) * np.float32(amplitude) for _ in range(3)]
    )
    return Deformation(scale=float(scale), rotation=rotation, displacement_mm=displacement)


def random_brain_scale(rng: np.random.Generator) -> float:
    """How much smaller than the template this subject's brain is."""
    return float(rng.uniform(*BRAIN_SCALE))


def acquire(
    rng: np.random.Generator,
    sequence: str,
    signal: np.ndarray,
    brain: np.ndarray,
    outside: float,
    noise_reference: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Scan a noise-free (z, y, x) signal: blur, bias, Rician noise, scanner units (int16, 0 outside).

    `brain` is what the scan covers (a whole head's grid when it has one); the noise level is
    relative to the median signal over `noise_reference` (default: all of `brain`).
    """
    # Outside the brain lies CSF and skull, not vacuum: padding with CSF keeps the edge unblurred.
    filled = np.where(brain, signal, np.float32(outside))
    sigma = (rng.uniform(*SLICE_BLUR_VOXELS[sequence]), IN_PLANE_BLUR_VOXELS, IN_PLANE_BLUR_VOXELS)
    blurred = ndimage.gaussian_filter(filled, sigma, truncate=TRUNCATE_SIGMAS)[brain]
    bias = np.exp(
        cosine_field(rng, signal.shape, BIAS_FREQUENCIES)[brain] * np.float32(rng.uniform(*BIAS_STRENGTH))
    )
    clean = blurred * bias
    reference = clean if noise_reference is None else clean[noise_reference[brain]]
    noise = np.float32(rng.uniform(*NOISE_FRACTION) * np.median(reference[::MEDIAN_SUBSAMPLING]))
    real = clean + noise * rng.standard_normal(clean.shape, dtype=np.float32)
    imaginary = noise * rng.standard_normal(clean.shape, dtype=np.float32)
    magnitude = np.sqrt(real * real + imaginary * imaginary)
    scale = np.exp(rng.uniform(*np.log(SCANNER_SCALE)))
    values = magnitude * np.float32(scale) + np.float32(scale * rng.uniform(*SCANNER_OFFSET))
    out = np.zeros(signal.shape, dtype=np.int16)
    # Zero means "outside the brain" in BraTS files, so brain voxels are at least 1.
    out[brain] = np.clip(np.rint(values), 1, np.iinfo(np.int16).max).astype(np.int16)
    return out
