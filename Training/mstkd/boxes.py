"""Bounding boxes of masks, as tuples of slices: found, grown by a margin, joined.

numpy alone: `mstkd segment` uses it and starts without importing scipy (see test_startup).
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

Box = Tuple[slice, ...]


def bounding_box(mask: np.ndarray) -> Optional[Box]:
    """The bounding box of a mask's voxels, or None when it has none."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return None
    box = []
    for axis in range(mask.ndim):
        across = tuple(other for other in range(mask.ndim) if other != axis)
        found = np.flatnonzero(mask.any(axis=across))
        box.append(slice(int(found[0]), int(found[-1]) + 1))
    return tuple(box)


def grown(box: Optional[Box], margin: int, shape: Sequence[int]) -> Optional[Box]:
    """`box` grown by `margin` voxels on every side, within an array of `shape`; None stays None."""
    if box is None:
        return None
    return tuple(slice(max(s.start - margin, 0), min(s.stop + margin, n)) for s, n in zip(box, shape))


def union(boxes: Sequence[Optional[Box]]) -> Box:
    """The smallest box holding every given box (None entries are skipped; at least one is not None)."""
    present = [b for b in boxes if b is not None]
    return tuple(
        slice(min(b[axis].start for b in present), max(b[axis].stop for b in present))
        for axis in range(len(present[0]))
    )
