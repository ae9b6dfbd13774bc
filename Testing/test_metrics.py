"""Dice and HD95 under the named conventions: known answers, spacing order, brute force."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import binary_erosion, distance_transform_edt, gaussian_filter, generate_binary_structure
from scipy.spatial.distance import cdist

from mstkd.conventions import label_convention
from mstkd.errors import MSTKDError
from mstkd.metrics import (
    BRATS_HD95_PENALTY,
    METRIC_CONVENTIONS,
    dice,
    hd95,
    metric_convention,
    region_scores,
    surface_distances,
)


def cube(shape, corner, size):
    """A boolean mask holding one axis-aligned cube (index order i, j, k)."""
    mask = np.zeros(shape, bool)
    mask[tuple(slice(c, c + size) for c in corner)] = True
    return mask


GRID = (30, 30, 30)
CUBE = cube(GRID, (10, 10, 10), 10)


def far_cube_case(n):
    reference = cube((64, 64, 64), (10, 10, 10), 20)
    return reference, reference | cube((64, 64, 64), (50, 50, 50), n)


def with_one_far_voxel():
    prediction = CUBE.copy()
    prediction[0, 0, 0] = True
    return CUBE, prediction


# The known answers of DATA_AND_EVALUATION.md (Dice; pooled HD95 in mm), spacing in x, y, z.
KNOWN_ANSWERS = [
    ("cube vs itself", (CUBE, CUBE), (1, 1, 1), 1.0, 0.0),
    ("shift 1 along x", (CUBE, cube(GRID, (11, 10, 10), 10)), (1, 1, 1), 0.9, 1.0),
    ("shift 1 along x, 2 mm in x", (CUBE, cube(GRID, (11, 10, 10), 10)), (2, 1, 1), 0.9, 2.0),
    ("shift 3 along x", (CUBE, cube(GRID, (13, 10, 10), 10)), (1, 1, 1), 0.7, 3.0),
    ("inside a 12^3 cube", (CUBE, cube(GRID, (9, 9, 9), 12)), (1, 1, 1), 0.7331, 1.4142),
    ("one distant false positive", with_one_far_voxel(), (1, 1, 1), 0.9995, 0.0),
    ("64^3, far cube n=5", far_cube_case(5), (1, 1, 1), None, 0.0),
    ("64^3, far cube n=6", far_cube_case(6), (1, 1, 1), None, 0.0),
    ("64^3, far cube n=8", far_cube_case(8), (1, 1, 1), None, 40.31),
]


@pytest.mark.parametrize(
    ("masks", "spacing", "expected_dice", "expected_hd95"),
    [k[1:] for k in KNOWN_ANSWERS],
    ids=[k[0] for k in KNOWN_ANSWERS],
)
def test_known_answers_of_the_data_document(masks, spacing, expected_dice, expected_hd95):
    reference, prediction = masks
    if expected_dice is not None:
        assert dice(reference, prediction) == pytest.approx(expected_dice, abs=5e-5)
    assert hd95(reference, prediction, spacing) == pytest.approx(expected_hd95, abs=5e-3)
    assert hd95(prediction, reference, spacing) == pytest.approx(expected_hd95, abs=5e-3)


def test_spacing_follows_the_arrays_index_order():
    shifted_in_x = cube(GRID, (11, 10, 10), 10)  # index order: the first axis is x (i)
    shifted_in_z = cube(GRID, (10, 10, 11), 10)
    assert hd95(CUBE, shifted_in_x, (2.0, 1.0, 1.0)) == pytest.approx(2.0)
    assert hd95(CUBE, shifted_in_z, (2.0, 1.0, 1.0)) == pytest.approx(1.0)
    assert hd95(CUBE, shifted_in_z, (1.0, 1.0, 3.0)) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="spacing"):
        hd95(CUBE, shifted_in_x, (1.0, 1.0))


def test_empty_masks_follow_each_convention():
    empty = np.zeros(GRID, bool)
    legacy, reference = metric_convention("brats-legacy"), metric_convention("MSTKDNET-REF")
    assert (dice(empty, empty, legacy), hd95(empty, empty, (1, 1, 1), legacy)) == (1.0, 0.0)
    assert (dice(CUBE, empty, legacy), hd95(CUBE, empty, (1, 1, 1), legacy)) == (0.0, BRATS_HD95_PENALTY)
    assert hd95(empty, CUBE, (1, 1, 1), legacy) == 373.13
    assert (dice(empty, empty, reference), hd95(empty, empty, (1, 1, 1), reference)) == (1.0, 0.0)
    assert dice(CUBE, empty, reference) == pytest.approx(1 / 1001)
    assert hd95(CUBE, empty, (1, 1, 1), reference) == 0.0
    assert hd95(empty, CUBE, (1, 1, 1), "mstkdnet-ref") == 0.0


def test_reference_convention_smooths_dice_by_one_and_keeps_pooled_hd95():
    shifted = cube(GRID, (11, 10, 10), 10)
    assert dice(CUBE, shifted, "mstkdnet-ref") == pytest.approx((2 * 900 + 1) / (2000 + 1))
    assert hd95(CUBE, shifted, (2, 1, 1), "mstkdnet-ref") == pytest.approx(2.0)


def test_convention_registry_names_and_rules():
    assert set(METRIC_CONVENTIONS) == {"brats-legacy", "mstkdnet-ref", "brats-lesionwise"}
    for name, convention in METRIC_CONVENTIONS.items():
        assert convention.name == name and convention.description
        assert metric_convention(convention) is convention
    assert "373.13" in metric_convention("brats-legacy").empty_prediction_rule()
    assert "HD95 0" in metric_convention("mstkdnet-ref").empty_prediction_rule()
    with pytest.raises(MSTKDError, match="brats-legacy, mstkdnet-ref, brats-lesionwise"):
        metric_convention("monai")


def medpy_surface_distances(a, b, sampling):
    """medpy's recipe on the full grid, distances read from a distance transform."""
    structure = generate_binary_structure(a.ndim, 1)
    border_a = a ^ binary_erosion(a, structure=structure)
    border_b = b ^ binary_erosion(b, structure=structure)
    return distance_transform_edt(~border_b, sampling=sampling)[border_a]


def brute_force_hd95(a, b, sampling):
    """Pooled HD95 from every pairwise distance between the two surfaces."""
    structure = generate_binary_structure(a.ndim, 1)
    points_a = np.argwhere(a ^ binary_erosion(a, structure=structure)) * sampling
    points_b = np.argwhere(b ^ binary_erosion(b, structure=structure)) * sampling
    pairwise = cdist(points_a, points_b)
    return np.percentile(np.hstack((pairwise.min(axis=1), pairwise.min(axis=0))), 95)


@pytest.mark.parametrize("seed", range(6))
def test_hd95_equals_brute_force_and_medpy_on_random_anisotropic_masks(seed):
    rng = np.random.default_rng(seed)
    shape = (9, 14, 17)
    a = gaussian_filter(rng.standard_normal(shape), 1.5) > 0.1  # blobs, some touching the border
    b = gaussian_filter(rng.standard_normal(shape), 1.5) > 0.1
    spacing = (0.7, 1.3, 2.5)
    sampling = np.array(spacing)

    expected = brute_force_hd95(a, b, sampling)
    assert hd95(a, b, spacing) == pytest.approx(expected, rel=1e-9)
    to_b, to_a = surface_distances(a, b, spacing)
    np.testing.assert_allclose(np.sort(to_b), np.sort(medpy_surface_distances(a, b, sampling)), rtol=1e-9)
    np.testing.assert_allclose(np.sort(to_a), np.sort(medpy_surface_distances(b, a, sampling)), rtol=1e-9)
    # The wrong axis order gives a different answer on these masks, so the test can tell.
    assert hd95(a, b, spacing[::-1]) != pytest.approx(expected, rel=1e-6)


def test_region_scores_build_regions_from_each_label_convention():
    reference = np.zeros(GRID, np.uint8)
    reference[CUBE] = 2  # oedema
    reference[12:18, 12:18, 12:18] = 1  # necrosis
    reference[14:16, 14:16, 14:16] = 4  # enhancing
    prediction = reference.copy()
    prediction[prediction == 4] = 1  # enhancing tumour missed, still in the core

    scores = region_scores(reference, prediction, label_convention("brats2021"), (1, 1, 1))

    assert list(scores) == ["WT", "TC", "ET"]
    assert (scores["WT"].dice, scores["WT"].hd95) == (1.0, 0.0)
    assert (scores["TC"].dice, scores["TC"].hd95) == (1.0, 0.0)
    assert (scores["ET"].dice, scores["ET"].hd95) == (0.0, 373.13)

    as_2023 = np.where(reference == 4, 3, reference)
    assert region_scores(as_2023, as_2023, label_convention("brats2023"))["ET"].dice == 1.0
    with_cavity = as_2023.copy()
    with_cavity[0:3, 0:3, 0:3] = 4  # a resection cavity is in no region
    cavity_scores = region_scores(as_2023, with_cavity, label_convention("brats2024"), (1, 1, 1))
    assert all(s.dice == 1.0 and s.hd95 == 0.0 for s in cavity_scores.values())

    shifted = np.zeros(GRID, np.uint8)
    shifted[cube(GRID, (11, 10, 10), 10)] = 2
    only_oedema = np.where(reference > 0, 2, 0).astype(np.uint8)
    anisotropic = region_scores(
        only_oedema, shifted, label_convention("brats2021"), (2, 1, 1), "mstkdnet-ref"
    )
    assert anisotropic["WT"].hd95 == pytest.approx(2.0)
    assert anisotropic["ET"] == anisotropic["TC"]
    assert anisotropic["ET"].dice == 1.0


def test_label_maps_of_different_sizes_raise():
    with pytest.raises(MSTKDError, match="differ in size"):
        region_scores(np.zeros((4, 4, 4)), np.zeros((4, 4, 5)), label_convention("brats2021"))
