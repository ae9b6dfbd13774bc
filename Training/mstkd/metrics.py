"""Dice and HD95 per tumour region under a named metric convention.

Arrays are in the project's index order (i, j, k), as `imageio.image_to_array` returns them,
so the spacing is given in the same order, which is also SimpleITK's `Image.GetSpacing()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Mapping, Sequence, Tuple, Union

import numpy as np
from scipy.ndimage import binary_erosion, generate_binary_structure
from scipy.spatial import cKDTree

from mstkd.conventions import REGIONS, LabelConvention, region_masks
from mstkd.errors import MSTKDError
from mstkd.lesionwise import (
    LESION_HD95_PENALTY,
    LESION_MIN_VOLUME_MM3,
    LESIONWISE_EXTRAS,
    lesionwise_scores,
    require_panoptica,
)

# The diagonal of the 240 x 240 x 155 mm BraTS grid, the legacy penalty for a missed region.
BRATS_HD95_PENALTY = 373.13


@dataclass(frozen=True)
class MetricConvention:
    """How Dice and HD95 treat empty masks; identical elsewhere (HD95 pools both directions)."""

    name: str
    description: str
    dice_smoothing: float  # added to numerator and denominator of Dice
    dice_both_empty: float
    hd95_both_empty: float
    hd95_one_empty: float
    # Scored lesion by lesion (mstkd.lesionwise); `extra_metrics` name the values beside Dice and HD95.
    lesionwise: bool = False
    extra_metrics: Tuple[str, ...] = ()

    @property
    def metrics(self) -> Tuple[str, ...]:
        """The names of every value it gives per region: dice, hd95, then its extra ones."""
        return ("dice", "hd95", *self.extra_metrics)

    def empty_prediction_rule(self) -> str:
        """What a missing (empty) prediction scores under this convention, for warnings."""
        if self.dice_smoothing:
            dice = f"Dice {self.dice_smoothing:g}/(|GT|+{self.dice_smoothing:g})"
        else:
            dice = "Dice 0"
        absent = "absent" + (
            f" or all its lesions are {LESION_MIN_VOLUME_MM3:g} mm3 or less" if self.lesionwise else ""
        )
        return (
            f"{dice} and HD95 {self.hd95_one_empty:g} for every region present in the ground truth "
            f"(Dice {self.dice_both_empty:g}, HD95 {self.hd95_both_empty:g} where it is {absent})"
        )


# The MST-KDNet code's scores (`mstkd evaluate-model --protocol reference` uses them by default).
REFERENCE_CODE_CONVENTION = "mstkdnet-ref"

METRIC_CONVENTIONS: Dict[str, MetricConvention] = {
    c.name: c
    for c in (
        MetricConvention(
            "brats-legacy",
            "legacy BraTS (CaPTk, nnU-Net): Dice 1 if both masks are empty, 0 if one is; HD95 0 if both "
            f"are empty, {BRATS_HD95_PENALTY} if one is; HD95 = 95th percentile of the pooled surface "
            "distances in both directions (medpy hd95), in mm",
            dice_smoothing=0.0,
            dice_both_empty=1.0,
            hd95_both_empty=0.0,
            hd95_one_empty=BRATS_HD95_PENALTY,
        ),
        # Quanato607/MST-KDNet: losses.py `class Dice(smooth=1.0)` returns
        # (2 * intersection + smooth) / (pred.sum() + target.sum() + smooth); binary.py `hd95`
        # returns 0.0 when either mask is empty, else medpy's pooled 95th percentile. Its utils.py
        # calls hd95 without voxel spacing; on BraTS's 1 mm grids that equals the spacing used here.
        MetricConvention(
            REFERENCE_CODE_CONVENTION,
            "MST-KDNet reference code: Dice = (2|A&B|+1)/(|A|+|B|+1); HD95 0 if either mask is empty, "
            "else the pooled 95th percentile as in brats-legacy",
            dice_smoothing=1.0,
            dice_both_empty=1.0,
            hd95_both_empty=0.0,
            hd95_one_empty=0.0,
        ),
        MetricConvention(
            "brats-lesionwise",
            "BraTS 2023 lesion-wise, glioma rules, computed with panoptica: Dice and HD95 averaged over "
            f"the ground-truth lesions over {LESION_MIN_VOLUME_MM3:g} mm3 and the false lesions, a missed or "
            f"false lesion scoring Dice 0 and HD95 {LESION_HD95_PENALTY:g} (Dice 1, HD95 0 with neither); "
            "the global binary Dice and HD95 beside; RC scored too where the labels have it",
            dice_smoothing=0.0,
            dice_both_empty=1.0,
            hd95_both_empty=0.0,
            hd95_one_empty=LESION_HD95_PENALTY,
            lesionwise=True,
            extra_metrics=LESIONWISE_EXTRAS,
        ),
    )
}
DEFAULT_METRIC_CONVENTION = "brats-legacy"

ConventionLike = Union[str, MetricConvention]


@dataclass(frozen=True)
class RegionScore:
    """Dice and HD95 (mm) of one region of one case, and the values its convention adds beside them."""

    dice: float
    hd95: float
    extra: Mapping[str, float] = field(default_factory=dict)

    def values(self) -> Dict[str, float]:
        """Dice, HD95 and the extra values, by name."""
        return {"dice": self.dice, "hd95": self.hd95, **self.extra}


def scored_regions(scores: Sequence[Mapping[str, RegionScore]]) -> Tuple[str, ...]:
    """The regions of per-case scores in report order: WT, TC, ET, and RC where a convention adds it."""
    return tuple(scores[0]) if scores else tuple(REGIONS)


def metric_convention(name: ConventionLike) -> MetricConvention:
    """Look up a metric convention by name (a convention passes through), or raise with the valid names."""
    if isinstance(name, MetricConvention):
        return name
    try:
        convention = METRIC_CONVENTIONS[name.lower()]
    except KeyError:
        raise MSTKDError(
            f"Unknown metric convention '{name}'; choose one of {', '.join(METRIC_CONVENTIONS)}."
        ) from None
    if convention.lesionwise:
        require_panoptica()  # refused when chosen, not after a long inference
    return convention


def dice(
    reference: np.ndarray, prediction: np.ndarray, convention: ConventionLike = DEFAULT_METRIC_CONVENTION
) -> float:
    """Dice overlap of two boolean masks."""
    rule = metric_convention(convention)
    reference, prediction = _as_masks(reference, prediction)
    size_sum = int(np.count_nonzero(reference)) + int(np.count_nonzero(prediction))
    if size_sum == 0:
        return float(rule.dice_both_empty)
    overlap = int(np.count_nonzero(reference & prediction))
    return (2.0 * overlap + rule.dice_smoothing) / (size_sum + rule.dice_smoothing)


def hd95(
    reference: np.ndarray,
    prediction: np.ndarray,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    convention: ConventionLike = DEFAULT_METRIC_CONVENTION,
) -> float:
    """95th percentile of the pooled symmetric surface distances (mm) of two boolean masks."""
    rule = metric_convention(convention)
    reference, prediction = _as_masks(reference, prediction)
    empty = (not reference.any(), not prediction.any())
    if all(empty):
        return float(rule.hd95_both_empty)
    if any(empty):
        return float(rule.hd95_one_empty)
    distances = surface_distances(reference, prediction, spacing)
    return float(np.percentile(np.hstack(distances), 95))


def surface_distances(
    a: np.ndarray, b: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0)
) -> Tuple[np.ndarray, np.ndarray]:
    """Distances (mm) from each surface voxel of `a` to the surface of `b`, and from `b` to `a`.

    Both masks must be non-empty. The values are medpy's: the surface is the mask minus its
    erosion by the face-connected structure (outside the array counts as background), and each
    distance is the Euclidean distance to the nearest surface voxel of the other mask.
    """
    a, b = _as_masks(a, b)
    sampling = np.asarray(_checked_spacing(spacing, a.ndim))
    points_a, points_b = _surface_points(a) * sampling, _surface_points(b) * sampling
    # A k-d tree over the surface points gives the distances medpy reads from a distance
    # transform of the whole grid, but its cost follows the surfaces, not the box they span:
    # one stray voxel in a corner does not make it 20 times slower.
    to_b = cKDTree(points_b).query(points_a)[0]
    to_a = cKDTree(points_a).query(points_b)[0]
    return to_b, to_a


def region_scores(
    reference_labels: np.ndarray,
    predicted_labels: np.ndarray,
    labels: LabelConvention,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    convention: ConventionLike = DEFAULT_METRIC_CONVENTION,
) -> Dict[str, RegionScore]:
    """Dice and HD95 of WT, TC and ET (and RC if lesion-wise and labelled) from two label maps of one grid."""
    if reference_labels.shape != predicted_labels.shape:
        raise MSTKDError(
            f"The label maps differ in size ({reference_labels.shape} vs {predicted_labels.shape}); "
            f"resample the prediction onto the ground truth's grid."
        )
    rule = metric_convention(convention)
    if rule.lesionwise:
        return {
            region: RegionScore(s.dice, s.hd95, {name: getattr(s, name) for name in rule.extra_metrics})
            for region, s in lesionwise_scores(reference_labels, predicted_labels, labels, spacing).items()
        }
    reference = region_masks(reference_labels, labels)
    prediction = region_masks(predicted_labels, labels)
    return {
        region: RegionScore(
            dice(reference[region], prediction[region], rule),
            hd95(reference[region], prediction[region], spacing, rule),
        )
        for region in REGIONS
    }


def _as_masks(a: np.ndarray, b: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a).astype(bool, copy=False), np.asarray(b).astype(bool, copy=False)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")
    return a, b


def _checked_spacing(spacing: Sequence[float], ndim: int) -> Tuple[float, ...]:
    if len(spacing) != ndim:
        raise ValueError(f"spacing {tuple(spacing)} has {len(spacing)} values for {ndim}-D masks")
    return tuple(float(s) for s in spacing)


def _surface_points(mask: np.ndarray) -> np.ndarray:
    """Voxel indices of a non-empty mask's surface."""
    # The surface depends only on the mask's bounding box plus one voxel of background, so
    # eroding that box alone changes nothing and costs a fraction of the full grid.
    box = []
    for axis in range(mask.ndim):
        hits = np.flatnonzero(mask.any(axis=tuple(k for k in range(mask.ndim) if k != axis)))
        box.append(slice(max(hits[0] - 1, 0), min(hits[-1] + 2, mask.shape[axis])))
    crop = mask[tuple(box)]
    surface = crop ^ binary_erosion(crop, structure=generate_binary_structure(mask.ndim, 1))
    return np.argwhere(surface) + [b.start for b in box]
