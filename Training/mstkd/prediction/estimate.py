"""How long a segmentation will take, from the model's speed measured on the device that will run it.

Inference dominates: the sliding windows over the brain's bounding box (on the model's grid) times
the seconds per window the device check measured. Reading, preparing and writing the exam scale
with its voxels, plus a co-registration per sequence on another grid. Torch-free: the Slicer panel
imports it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Sequence, Tuple

from mstkd.prediction.tiling import window_count

# Read + preprocess + place the labels + write, per million input voxels, and one rigid
# co-registration: `mstkd bench inference` on the 2-core development CPU (240 x 240 x 155 phantom).
PREPARATION_S_PER_MVOX = 0.03
REGISTRATION_S = 1.0


@dataclass(frozen=True)
class ModelSpeed:
    """What a device check measured: seconds per sliding window (at a batch size) of a model on a device,
    each window taking `passes` passes of the network (its test-time mirroring)."""

    device: str
    seconds_per_window: float
    windows_per_batch: int
    patch: Tuple[int, int, int]
    spacing: Tuple[float, float, float]
    overlap: float
    passes: int = 1

    def with_passes(self, passes: int) -> ModelSpeed:
        """The speed of the same windows taking `passes` passes each (another mirroring)."""
        seconds = self.seconds_per_window * passes / self.passes
        return dataclasses.replace(self, seconds_per_window=seconds, passes=passes)


@dataclass(frozen=True)
class TimeEstimate:
    """The expected seconds of one run, and what they are made of."""

    seconds: float
    windows: int
    inference_s: float
    preparation_s: float


def estimate_time(
    speed: ModelSpeed,
    extent_mm: Sequence[float],
    input_voxels: int,
    registrations: int = 0,
    preparation_s_per_mvox: float = PREPARATION_S_PER_MVOX,
) -> TimeEstimate:
    """Expected seconds to segment an exam whose brain spans `extent_mm`, from `input_voxels` voxels in
    all, with `registrations` sequences on grids other than the reference's."""
    size = [max(1, math.ceil(float(length) / float(step))) for length, step in zip(extent_mm, speed.spacing)]
    windows = window_count(size, speed.patch, speed.overlap)
    inference = windows * speed.seconds_per_window
    preparation = input_voxels / 1e6 * preparation_s_per_mvox + registrations * REGISTRATION_S
    return TimeEstimate(inference + preparation, windows, inference, preparation)
