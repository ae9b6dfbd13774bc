"""Intensity normalisation from the sequences present: brain mask, z-score, zero-fill for the rest.

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


def normalise_sequences(volumes: np.ndarray, present: Sequence[bool]) -> np.ndarray:
    """(4, D, H, W) raw volumes in canonical order -> z-scored present channels, absent ones zero.

    Each present channel is z-scored over its own non-zero voxels and is 0 elsewhere.
    """
    _check(volumes, present)
    out = np.zeros(volumes.shape, dtype=np.float32)
    for channel, available in enumerate(present):
        if available:
            out[channel] = zscore(volumes[channel], volumes[channel] != 0)
    return out


def _check(volumes: np.ndarray, present: Sequence[bool]) -> None:
    if volumes.ndim != 4 or volumes.shape[0] != len(SEQUENCES) or len(present) != len(SEQUENCES):
        raise MSTKDError(
            f"Expected {len(SEQUENCES)} volumes in the order {', '.join(SEQUENCES)} and as many "
            f"presence flags, got an array of shape {volumes.shape} and {len(present)} flags."
        )
    if not any(present):
        raise MSTKDError("At least one sequence must be present.")
