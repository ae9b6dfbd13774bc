"""The out-of-distribution test set's acquisition: artefacts the training phantoms never have.

Per sequence: thick slices with gaps along a random axis (3 to 5 voxels apart, then interpolated),
a bias field two to three times the training's, ghosting (a faint copy of the brain shifted
along the phase-encoding axis), motion (a shift during part of k-space), Gaussian noise whose
level varies across the brain (a parallel-imaging g-factor) instead of uniform Rician noise,
and scanner units of another range.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.interpolate import interp1d

from mstkd.phantom.fields import TRUNCATE_SIGMAS, cosine_field

IN_PLANE_BLUR_VOXELS = (0.3, 0.8)
THICK_SLICE_PROBABILITY = 0.6
SLICE_SPACING_VOXELS = (3.0, 5.0)  # the training augmentation's thick slices reach 4 voxels
SLICE_FILL = (0.6, 0.9)  # slice thickness over spacing: a gap between slices
BIAS_STRENGTH = (0.15, 0.3)  # standard deviation of the log field (training: 0.03-0.1)
BIAS_FREQUENCIES = 3
GHOST_PROBABILITY = 0.4
GHOST_AMPLITUDE = (0.05, 0.15)
MOTION_PROBABILITY = 0.3
MOTION_SHIFT_VOXELS = (1.0, 3.0)
MOTION_LINES = (0.2, 0.5)  # share of the phase-encoding lines acquired after the shift
NOISE_FRACTION = (0.02, 0.07)
NOISE_VARIATION = 0.5  # the noise level varies by this fraction across the brain
NOISE_FREQUENCIES = 2
SCANNER_SCALE = (40.0, 6000.0)
MEDIAN_SUBSAMPLING = 16


def _thick_slices(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """2-D slices with gaps along a random axis, interpolated back linearly (as BraTS resampled them)."""
    axis = int(rng.integers(3))
    spacing = rng.uniform(*SLICE_SPACING_VOXELS)
    thickness = max(1, int(round(spacing * rng.uniform(*SLICE_FILL))))
    profile = ndimage.uniform_filter1d(image, size=thickness, axis=axis)
    size = image.shape[axis]
    centres = np.unique(np.round(np.arange(spacing / 2, size, spacing)).astype(int).clip(0, size - 1))
    if len(centres) < 2:
        return profile
    slices = interp1d(centres, np.take(profile, centres, axis=axis), axis=axis, assume_sorted=True)
    return slices(np.clip(np.arange(size), centres[0], centres[-1])).astype(np.float32)


def _ghost(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    axis = int(rng.choice([1, 2]))  # in-plane phase encoding
    shift = image.shape[axis] // 2 + int(rng.integers(-4, 5))
    return image + np.float32(rng.uniform(*GHOST_AMPLITUDE)) * np.roll(image, shift, axis=axis)


def _motion(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    axis = int(rng.choice([1, 2]))
    spectrum = np.fft.fftn(image)
    frequencies = np.fft.fftfreq(image.shape[axis])
    moved = np.abs(frequencies) > np.quantile(np.abs(frequencies), 1.0 - rng.uniform(*MOTION_LINES))
    phase = np.exp(-2j * np.pi * frequencies * rng.uniform(*MOTION_SHIFT_VOXELS))
    factor = np.where(moved, phase, 1.0).reshape([-1 if a == axis else 1 for a in range(image.ndim)])
    return np.abs(np.fft.ifftn(spectrum * factor)).astype(np.float32)


def acquire_ood(
    rng: np.random.Generator, sequence: str, signal: np.ndarray, brain: np.ndarray, outside: float
) -> np.ndarray:
    """Scan a noise-free (z, y, x) signal with the OOD artefacts (int16, 0 outside the brain)."""
    filled = np.where(brain, signal, np.float32(outside))
    sigma = (0.0, rng.uniform(*IN_PLANE_BLUR_VOXELS), rng.uniform(*IN_PLANE_BLUR_VOXELS))
    image = ndimage.gaussian_filter(filled, sigma, truncate=TRUNCATE_SIGMAS)
    if rng.random() < THICK_SLICE_PROBABILITY:
        image = _thick_slices(rng, image)
    image = image * np.exp(
        cosine_field(rng, image.shape, BIAS_FREQUENCIES) * np.float32(rng.uniform(*BIAS_STRENGTH))
    )
    if rng.random() < GHOST_PROBABILITY:
        image = _ghost(rng, image * brain)
    if rng.random() < MOTION_PROBABILITY:
        image = _motion(rng, image)
    level = rng.uniform(*NOISE_FRACTION) * np.median(image[brain][::MEDIAN_SUBSAMPLING])
    varying = 1.0 + NOISE_VARIATION * np.tanh(cosine_field(rng, image.shape, NOISE_FREQUENCIES))
    noisy = image + np.float32(level) * varying * rng.standard_normal(image.shape, dtype=np.float32)
    scale = np.exp(rng.uniform(*np.log(SCANNER_SCALE)))
    out = np.zeros(signal.shape, dtype=np.int16)
    out[brain] = np.clip(np.rint(noisy[brain] * scale), 1, np.iinfo(np.int16).max).astype(np.int16)
    return out
