"""Tumour volumes in millilitres from a label map: the sub-regions and the nested regions."""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from mstkd.conventions import SUBREGIONS, LabelConvention, region_masks

MM3_PER_ML = 1000.0
# Keys of the volumes, in the order reports show them: disjoint sub-regions, then nested regions.
VOLUME_KEYS = ("NCR", "ED", "ET", "WT", "TC")


def region_volumes_ml(
    labels: np.ndarray, convention: LabelConvention, spacing: Sequence[float]
) -> Dict[str, float]:
    """NCR, ED, ET, WT and TC in mL: voxel counts times the voxel volume of the label map's grid."""
    voxel_ml = float(np.prod([float(s) for s in spacing])) / MM3_PER_ML
    counts = {name.upper(): int(np.count_nonzero(labels == convention.values[name])) for name in SUBREGIONS}
    counts.update(
        {region: int(np.count_nonzero(mask)) for region, mask in region_masks(labels, convention).items()}
    )
    return {key: counts[key] * voxel_ml for key in VOLUME_KEYS}
