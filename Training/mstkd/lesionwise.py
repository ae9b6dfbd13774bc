"""Lesion-wise Dice and HD95 as the BraTS 2023 glioma challenge ranks them, computed with panoptica.

Every lesion of a region is scored on its own, so a missed small lesion weighs as much as a missed
large one, and every false lesion costs as much as a missed one (README, "Lesion-wise metrics"):

1. Lesions are the 26-connected components of the ground truth dilated by `LESION_DILATION`
   voxels (18-connected structure), each cut back to the ground truth: pieces that close are one.
2. A predicted 26-connected component hits a lesion if it touches that lesion's dilated
   component; the lesion is scored against every component that hits it (one component may hit
   several lesions); a component that hits no lesion is a false lesion.
3. Lesions of `LESION_MIN_VOLUME_MM3` or less are left out; a component hitting one is not false.
4. Dice = sum of the lesions' Dice / (lesions + false lesions); HD95 likewise, with
   `LESION_HD95_PENALTY` for each missed or false lesion; with neither, Dice 1 and HD95 0.

panoptica finds the components and computes each Dice and (pooled, medpy-style) HD95.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from types import ModuleType
from typing import Dict, List, Sequence, Tuple

import numpy as np
from scipy.ndimage import binary_dilation, find_objects, generate_binary_structure

from mstkd.boxes import Box, bounding_box, grown, union
from mstkd.conventions import LabelConvention, region_masks, regions_with_cavity
from mstkd.errors import MSTKDError

# BraTS-2023-Metrics (rachitsaluja), `get_challenge_parameters('BraTS-GLI')` and its scoring.
LESION_DILATION = 3
LESION_MIN_VOLUME_MM3 = 50.0
LESION_HD95_PENALTY = 374.0
_DILATION_STRUCTURE = generate_binary_structure(3, 2)


@dataclass(frozen=True)
class LesionwiseScore:
    """Lesion-wise and global Dice and HD95 (mm) of one region, and how many lesions were found."""

    dice: float
    hd95: float
    global_dice: float
    global_hd95: float
    lesions_detected: int  # lesions above the volume threshold that the prediction hits
    lesions_missed: int  # lesions above the volume threshold that it does not
    lesions_false: int  # predicted components that hit no lesion


# What a report gives beside the lesion-wise Dice and HD95, in its order.
LESIONWISE_EXTRAS: Tuple[str, ...] = tuple(f.name for f in fields(LesionwiseScore))[2:]


def require_panoptica() -> ModuleType:
    """The panoptica package, or an error that says how to install it."""
    try:
        import panoptica
    except ImportError:
        raise MSTKDError(
            "The brats-lesionwise metric convention needs the panoptica package: "
            "pip install 'mstkd[lesionwise]' (Python 3.10 or newer)."
        ) from None
    return panoptica


def lesionwise_scores(
    reference_labels: np.ndarray,
    predicted_labels: np.ndarray,
    labels: LabelConvention,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
) -> Dict[str, LesionwiseScore]:
    """Scores of WT, TC, ET (and RC where the labels have it) from two label maps of one grid."""
    regions = regions_with_cavity(labels)
    reference = region_masks(reference_labels, labels, regions)
    prediction = region_masks(predicted_labels, labels, regions)
    return {region: region_lesionwise(reference[region], prediction[region], spacing) for region in regions}


def region_lesionwise(
    reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0)
) -> LesionwiseScore:
    """Lesion-wise and global Dice and HD95 of one region's ground-truth and predicted masks."""
    panoptica = require_panoptica()
    reference, prediction = np.asarray(reference, bool), np.asarray(prediction, bool)
    global_dice, global_hd95 = _binary_scores(panoptica, reference, prediction, spacing)
    if not (reference.any() or prediction.any()):
        return LesionwiseScore(1.0, 0.0, global_dice, global_hd95, 0, 0, 0)
    # Nothing beyond the dilated ground truth and the prediction changes the result.
    box = union([grown(bounding_box(reference), LESION_DILATION, reference.shape), bounding_box(prediction)])
    reference, prediction = reference[box], prediction[box]
    reach = binary_dilation(reference, _DILATION_STRUCTURE, iterations=LESION_DILATION)
    pair = panoptica.SemanticPair(prediction.astype(np.uint8), reach.astype(np.uint8))
    instances = panoptica.ConnectedComponentsInstanceApproximator(
        panoptica.CCABackend.cc3d
    ).approximate_instances(pair)
    components, reaches = instances.prediction_arr, instances.reference_arr
    lesions = np.where(reference, reaches, 0)
    component_boxes = find_objects(components)
    voxel_mm3 = float(np.prod(spacing))

    scores: List[Tuple[float, float]] = []
    hit_any = set()
    missed = 0
    for lesion, lesion_box in enumerate(find_objects(reaches), start=1):
        hits = [int(h) for h in np.unique(components[lesion_box][reaches[lesion_box] == lesion]) if h]
        hit_any.update(hits)
        if np.count_nonzero(lesions[lesion_box] == lesion) * voxel_mm3 <= LESION_MIN_VOLUME_MM3:
            continue
        if hits:
            pair_box = union([lesion_box, *(component_boxes[h - 1] for h in hits)])
            scores.append(_lesion_scores(panoptica, lesions, components, lesion, hits, pair_box, spacing))
        else:
            scores.append((0.0, LESION_HD95_PENALTY))
            missed += 1
    false = instances.n_pred_instances - len(hit_any)
    counted = len(scores) + false
    if counted == 0:
        dice, hd95 = 1.0, 0.0
    else:
        dice = sum(d for d, _ in scores) / counted
        hd95 = (sum(h for _, h in scores) + false * LESION_HD95_PENALTY) / counted
    return LesionwiseScore(dice, hd95, global_dice, global_hd95, len(scores) - missed, missed, false)


def _lesion_scores(
    panoptica: ModuleType,
    lesions: np.ndarray,
    components: np.ndarray,
    lesion: int,
    hits: List[int],
    box: Box,
    spacing: Sequence[float],
) -> Tuple[float, float]:
    box = grown(box, 1, lesions.shape)  # a background margin keeps every surface voxel a surface voxel
    reference, prediction = lesions[box], components[box]
    dice = panoptica.Metric.DSC(reference, prediction, ref_instance_idx=lesion, pred_instance_idx=hits)
    hd95 = panoptica.Metric.HD95(
        reference, prediction, ref_instance_idx=lesion, pred_instance_idx=hits, voxelspacing=spacing
    )
    return float(dice), float(hd95)


def _binary_scores(
    panoptica: ModuleType, reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float]
) -> Tuple[float, float]:
    """Dice and HD95 of the whole region (BraTS 2023: 1 and 0 if both are empty, 0 and 374 if one is)."""
    empty = (not reference.any(), not prediction.any())
    if all(empty):
        return 1.0, 0.0
    if any(empty):
        return 0.0, LESION_HD95_PENALTY
    box = grown(union([bounding_box(reference), bounding_box(prediction)]), 1, reference.shape)
    dice = panoptica.Metric.DSC(reference[box], prediction[box])
    hd95 = panoptica.Metric.HD95(reference[box], prediction[box], voxelspacing=spacing)
    return float(dice), float(hd95)
