"""Where the sliding windows over a volume start, and how many there are (torch-free: the Slicer
panel's time estimate imports it)."""

from __future__ import annotations

import math
from typing import List, Sequence


def window_starts(size: int, window: int, overlap: float) -> List[int]:
    """Where the windows along one side of `size` voxels start (the last one flush with the end)."""
    if size <= window:
        return [0]
    step = max(int(window * (1 - overlap)), 1)
    count = math.ceil((size - window) / step) + 1
    return [min(index * step, size - window) for index in range(count)]


def window_count(size: Sequence[int], patch: Sequence[int], overlap: float) -> int:
    """How many windows cover a volume of `size` (padded up to `patch`): MONAI's sliding window's count."""
    return math.prod(len(window_starts(side, window, overlap)) for side, window in zip(size, patch))
