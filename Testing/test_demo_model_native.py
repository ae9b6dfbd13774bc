"""The bundled demo model on clinical exams: other grids and misaligned series, partial coverage."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from mstkd.conventions import label_convention
from mstkd.imageio import image_to_array
from mstkd.inference.predictor import Predictor
from mstkd.metrics import region_scores
from mstkd.phantom import generate_case

# The demo command's exam (a seed the demo model never saw), full size.
SEED = 2026
# Thick FLAIR and T2 slices, other orientations, motion and registration cost a few points of
# Dice on this exam (measured with the bundled weights before mirroring, sha256 ff10a5cb...:
# WT 0.86 -> 0.83, TC 0.88 -> 0.90, ET 0.80 -> 0.81).
TOLERANCE = 0.08


def dice_per_region(result, truth, convention) -> dict:
    scores = region_scores(
        image_to_array(truth), image_to_array(result.labels), label_convention(convention), truth.GetSpacing()
    )
    return {region: score.dice for region, score in scores.items()}


def test_the_demo_model_scores_a_clinical_exam_like_its_brats_version():
    case = generate_case(SEED, 0, native=True)
    predictor = Predictor("demo", device="cpu")
    brats = predictor.segment(case.images)
    clinical = predictor.segment(case.native_images)
    assert clinical.reference == "t1ce"
    assert sum(step.startswith("registered ") for step in clinical.steps) == 3
    on_brats_grid = dice_per_region(brats, case.labels, case.convention)
    on_clinical_grids = dice_per_region(clinical, case.native_labels, case.convention)
    assert min(on_brats_grid.values()) > 0.6, on_brats_grid
    for region, value in on_brats_grid.items():
        clinical_value = on_clinical_grids[region]
        assert clinical_value == pytest.approx(value, abs=TOLERANCE), (on_brats_grid, on_clinical_grids)


def slab(image: sitk.Image, first_missing_slice: int) -> sitk.Image:
    """`image` as a slab acquisition that stops below axial slice `first_missing_slice`."""
    array = sitk.GetArrayFromImage(image)
    array[first_missing_slice:] = 0
    cut = sitk.GetImageFromArray(array)
    cut.CopyInformation(image)
    return cut


def test_sequences_that_cover_part_of_the_tumour_still_help_where_they_do():
    # FLAIR and T2 slabs that end half-way up the tumour: above, only T1 and T1ce show it.
    case = generate_case(SEED, 0)
    tumour_slices = np.nonzero(sitk.GetArrayFromImage(case.labels).any(axis=(1, 2)))[0]
    edge = int(tumour_slices.mean())
    images = {**case.images, "flair": slab(case.images["flair"], edge), "t2": slab(case.images["t2"], edge)}
    result = Predictor("demo", device="cpu").segment(images)
    scores = dice_per_region(result, case.labels, case.convention)
    # Measured: WT 0.65, TC 0.88, ET 0.80 (whole exam 0.86 / 0.88 / 0.80); with the first demo model
    # WT 0.59 (0.44 with the missing part of the slabs z-scored as very dark brain).
    assert scores["WT"] > 0.5 and scores["TC"] > 0.45 and scores["ET"] > 0.72, scores
