"""Intensity normalisation from the sequences present: brain mask, z-score (or min-max), zero-fill.

The mask comes from the AVAILABLE sequences only, so a model never learns from (or leaks)
information a missing sequence would have carried. Each sequence is z-scored over the voxels it
covers (non-zero: inside the brain and inside its field of view); a voxel it does not cover reads
0, the value of a missing sequence. On skull-stripped BraTS-style data every sequence covers the
same brain; a clinical slab (a FLAIR that stops half-way up the brain) is then missing above its
edge instead of looking darker than anything in the brain.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from mstkd.conventions import SEQUENCES
from mstkd.errors import MSTKDError

_MIN_STD = 1e-6

# z-score over each sequence's brain (the community standard, our default), or the MST-KDNet
# reference's min-max scaling of each whole volume to [0, 1], background included.
ZSCORE, MINMAX = "zscore", "minmax"
NORMALISATIONS = (ZSCORE, MINMAX)


def brain_mask(volumes: np.ndarray, present: Sequence[bool]) -> np.ndarray:
    """Voxels where any present sequence is non-zero (skull-stripped images are 0 outside)."""
    _check(volumes, present)
    return np.any(volumes[np.asarray(present, dtype=bool)] != 0, axis=0)


def zscore(volume: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Z-score a volume with the mean and std inside the mask; 0 outside it."""
    inside = volume[mask].astype(np.float64)
    if inside.size == 0:
        return np.zeros(volume.shape, dtype=np.float32)
    std = max(float(inside.std()), _MIN_STD)
    out = (volume.astype(np.float32) - np.float32(inside.mean())) / np.float32(std)
    out[~mask] = 0.0
    return out


def minmax(volume: np.ndarray) -> np.ndarray:
    """Scale a whole volume to [0, 1] by its minimum and maximum (0 for a constant volume)."""
    low, high = float(volume.min()), float(volume.max())
    if high - low < _MIN_STD:
        return np.zeros(volume.shape, dtype=np.float32)
    return ((volume.astype(np.float32) - np.float32(low)) / np.float32(high - low)).astype(np.float32)


def normalise_sequences(volumes: np.ndarray, present: Sequence[bool], method: str = ZSCORE) -> np.ndarray:
    """(4, D, H, W) raw volumes in canonical order -> normalised present channels, absent ones zero.

    z-score: each present channel over its own non-zero voxels, 0 elsewhere. min-max: each
    present channel over its whole volume, as the MST-KDNet reference.
    """
    _check(volumes, present)
    if method not in NORMALISATIONS:
        raise MSTKDError(f"Unknown normalisation {method!r}; choose one of {', '.join(NORMALISATIONS)}.")
    out = np.zeros(volumes.shape, dtype=np.float32)
    for channel, available in enumerate(present):
        if not available:
            continue
        volume = volumes[channel]
        out[channel] = zscore(volume, volume != 0) if method == ZSCORE else minmax(volume)
    return out


def _check(volumes: np.ndarray, present: Sequence[bool]) -> None:
    if volumes.ndim != 4 or volumes.shape[0] != len(SEQUENCES) or len(present) != len(SEQUENCES):
        raise MSTKDError(
            f"Expected {len(SEQUENCES)} volumes in the order {', '.join(SEQUENCES)} and as many "
            f"presence flags, got an array of shape {volumes.shape} and {len(present)} flags."
        )
    if not any(present):
        raise MSTKDError("At least one sequence must be present.")
