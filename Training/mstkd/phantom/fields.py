"""Smooth random fields: the raw material of deformations, bias fields, shapes and textures."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

# How fast the weight of a cosine component falls with its frequency: larger is smoother.
SPECTRAL_DECAY = 1.5
# Noise blurred by a large sigma is drawn on a grid coarser by half the sigma, then interpolated:
# the result is as smooth, and large blobs cost little.
COARSE_FROM_SIGMA = 3.0
COARSE_STEPS_PER_SIGMA = 0.5
# Gaussian kernels end at this many sigmas (the tail beyond changes nothing visible).
TRUNCATE_SIGMAS = 3.0
# Standard deviations are estimated on every n-th voxel: plenty for a smooth field.
STD_SUBSAMPLING = 3


def _unit_std(field: np.ndarray) -> np.ndarray:
    sample = field[(slice(None, None, STD_SUBSAMPLING),) * field.ndim]
    return (field / np.float32(max(float(sample.std()), 1e-6))).astype(np.float32, copy=False)


def cosine_field(rng: np.random.Generator, shape: Sequence[int], frequencies: int) -> np.ndarray:
    """A smooth random 3-D field of unit standard deviation: low-frequency cosines with random weights."""
    steps = np.arange(frequencies)
    total = steps[:, None, None] ** 2 + steps[None, :, None] ** 2 + steps[None, None, :] ** 2
    weights = np.where(total > 0, 1.0 / np.maximum(total, 1) ** (SPECTRAL_DECAY / 2), 0.0)
    coefficients = (rng.standard_normal((frequencies,) * 3) * weights).astype(np.float32)
    bases = [np.cos(np.pi * np.outer((np.arange(n) + 0.5) / n, steps)).astype(np.float32) for n in shape]
    # Summed axis by axis, so the field costs little more than filling the array.
    field = np.tensordot(bases[0], coefficients, axes=(1, 0))
    field = np.tensordot(field, bases[1], axes=(1, 1))
    return _unit_std(np.tensordot(field, bases[2], axes=(1, 1)))


def _upsample(coarse: np.ndarray, shape: Sequence[int], step: float) -> np.ndarray:
    """Linear interpolation of samples spaced `step` voxels apart onto `shape`, one axis at a time."""
    field = coarse
    for axis, size in enumerate(shape):
        position = np.arange(size) / step
        lower = np.minimum(np.floor(position).astype(int), field.shape[axis] - 2)
        fraction = (position - lower).astype(np.float32).reshape([-1 if a == axis else 1 for a in range(3)])
        field = field.take(lower, axis=axis) * (1.0 - fraction) + field.take(lower + 1, axis=axis) * fraction
    return field


def smooth_noise(rng: np.random.Generator, shape: Sequence[int], sigma_voxels: float) -> np.ndarray:
    """Gaussian-blurred white noise (sigma in voxels) of unit standard deviation: irregular blobs."""
    if sigma_voxels < COARSE_FROM_SIGMA:
        noise = rng.standard_normal(tuple(shape), dtype=np.float32)
        return _unit_std(ndimage.gaussian_filter(noise, sigma_voxels, truncate=TRUNCATE_SIGMAS))
    step = sigma_voxels * COARSE_STEPS_PER_SIGMA
    coarse_shape = [int(np.ceil((n - 1) / step)) + 2 for n in shape]
    noise = rng.standard_normal(coarse_shape, dtype=np.float32)
    coarse = ndimage.gaussian_filter(noise, sigma_voxels / step, truncate=TRUNCATE_SIGMAS)
    return _unit_std(_upsample(coarse, shape, step))
