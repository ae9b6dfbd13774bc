"""Synthetic BraTS-like cases: labels, contrasts per sequence, variety, determinism, grids."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from mstkd.conventions import SEQUENCES, label_convention
from mstkd.errors import MSTKDError
from mstkd.imageio import same_grid
from mstkd.phantom import BRATS_SIZE, brats_grid, generate_case, parse_size
from mstkd.phantom.anatomy import TISSUE_LABELS

SMALL = (64, 64, 48)
MEDIUM = (96, 96, 64)
SEED = 11
BRATS2021 = label_convention("brats2021")


@pytest.fixture(scope="module")
def small_cases():
    return [generate_case(SEED, index, SMALL) for index in range(8)]


@pytest.fixture(scope="module")
def medium_cases():
    return [generate_case(SEED, index, MEDIUM) for index in range(3)]


def region(case, name):
    return case.array("seg") == BRATS2021.values[name]


def normal(case, tissue):
    """Voxels of one tissue, away from the tumour and oedema."""
    return (case.array("tissues") == TISSUE_LABELS[tissue]) & (case.array("seg") == 0)


def mean(case, sequence, mask):
    return float(case.array(sequence)[mask].mean())


def test_labels_belong_to_the_convention(small_cases):
    for case in small_cases:
        assert set(np.unique(case.array("seg"))) <= BRATS2021.value_set()
    brats2023 = generate_case(SEED, 0, SMALL, convention="brats2023")
    assert set(np.unique(brats2023.array("seg"))) <= label_convention("brats2023").value_set()
    assert np.array_equal(brats2023.array("seg") > 0, small_cases[0].array("seg") > 0)


def test_every_case_has_a_tumour_and_they_vary(small_cases):
    volumes = np.array([[region(c, r).sum() for r in ("ncr", "ed", "et")] for c in small_cases])
    assert (volumes.sum(axis=1) > 0).all()
    assert (volumes.max(axis=0) > 0).all(), "some sub-region never appears"
    whole = volumes.sum(axis=1)
    assert whole.max() > 2 * whole.min()
    centres = np.array([np.argwhere(c.array("seg") > 0).mean(axis=0) for c in small_cases])
    assert np.ptp(centres, axis=0).max() > 5, "tumours all sit in the same place"


def test_brain_is_nonzero_and_background_exactly_zero(small_cases):
    for case in small_cases:
        brain = case.array("tissues") > 0
        for sequence in SEQUENCES:
            image = case.array(sequence)
            assert image.dtype == np.int16
            assert np.array_equal(image != 0, brain)
        assert not (case.array("seg")[~brain]).any()


def test_normal_tissue_contrast_per_sequence(medium_cases):
    for case in medium_cases:
        csf, gm, wm = (normal(case, t) for t in ("csf", "gm", "wm"))
        t1 = [mean(case, "t1", m) for m in (csf, gm, wm)]
        assert t1[2] > 1.1 * t1[1] > 1.1 * 1.1 * t1[0], "T1: WM > GM > CSF"
        t2 = [mean(case, "t2", m) for m in (csf, gm, wm)]
        assert t2[0] > 1.2 * t2[1] > 1.2 * 1.1 * t2[2], "T2: CSF > GM > WM"
        flair = [mean(case, "flair", m) for m in (csf, gm, wm)]
        assert flair[1] > 1.03 * flair[2] and flair[2] > 1.2 * flair[0], "FLAIR: GM > WM > CSF"


def test_tumour_contrast_per_sequence(medium_cases, small_cases):
    enhancing = [c for c in medium_cases + small_cases if c.plan.enhancing and region(c, "et").sum() > 30]
    assert enhancing
    for case in enhancing:
        et, ed, wm = region(case, "et"), region(case, "ed"), normal(case, "wm")
        # Coarse grids blur thin rims into their neighbours: the margin over WM is modest there.
        assert mean(case, "t1ce", et) > 1.05 * mean(case, "t1ce", wm), "enhancement on T1ce"
        assert mean(case, "t1ce", et) > 1.2 * mean(case, "t1", et) * (
            mean(case, "t1ce", wm) / mean(case, "t1", wm)
        ), "enhancement only after contrast"
        if region(case, "ncr").sum() > 10:
            ncr = region(case, "ncr")
            assert mean(case, "t1ce", et) > 1.4 * mean(case, "t1ce", ncr), "bright rim, dark necrosis"
            assert mean(case, "t1", ncr) < 0.8 * mean(case, "t1", wm), "necrosis dark on T1"
            assert mean(case, "t2", ncr) > 1.5 * mean(case, "t2", wm), "necrosis bright on T2"
        assert mean(case, "flair", ed) > 1.3 * mean(case, "flair", wm), "oedema bright on FLAIR"
        assert mean(case, "t2", ed) > 1.3 * mean(case, "t2", wm), "oedema bright on T2"
        assert mean(case, "t1", ed) < 0.95 * mean(case, "t1", wm), "oedema slightly dark on T1"


def test_sequences_are_not_copies_of_each_other(medium_cases):
    case = medium_cases[0]
    brain = case.array("tissues") > 0
    values = np.stack([case.array(s)[brain].astype(float) for s in SEQUENCES])
    correlation = np.corrcoef(values)
    off_diagonal = correlation[~np.eye(len(SEQUENCES), dtype=bool)]
    assert np.abs(off_diagonal).max() < 0.95


def test_a_case_depends_on_its_seed_and_index_only():
    first, again = generate_case(3, 5, SMALL), generate_case(3, 5, SMALL)
    for name in (*SEQUENCES, "seg"):
        assert np.array_equal(first.array(name), again.array(name))
    for other in (generate_case(4, 5, SMALL), generate_case(3, 6, SMALL)):
        assert not np.array_equal(first.array("t1"), other.array("t1"))


def test_grids_keep_the_brats_field_of_view():
    full = brats_grid(BRATS_SIZE)
    assert full.spacing == (1.0, 1.0, 1.0)
    assert full.origin == (0.0, -239.0, 0.0)
    small = brats_grid(SMALL)
    assert small.spacing == (3.75, 3.75, 3.75)
    assert np.allclose(small.centre, full.centre)


def test_full_size_case_lies_on_the_brats_grid():
    case = generate_case(SEED, 0)
    for image in (*case.images.values(), case.labels):
        assert image.GetSize() == BRATS_SIZE
        assert image.GetSpacing() == (1.0, 1.0, 1.0)
        assert image.GetOrigin() == (0.0, -239.0, 0.0)
        assert image.GetDirection() == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    assert (case.array("seg") > 0).sum() > 1000


def test_native_grids_differ_and_the_truth_lies_on_t1ce():
    case = generate_case(SEED, 1, MEDIUM, native=True)
    grids = {s: case.native_images[s] for s in SEQUENCES}
    for a in SEQUENCES:
        for b in SEQUENCES:
            if a < b:
                assert not same_grid(grids[a], grids[b]), f"{a} and {b} share a grid"
    truth, t1ce = case.native_labels, grids["t1ce"]
    assert truth.GetSize() == t1ce.GetSize()
    assert truth.GetSpacing() == t1ce.GetSpacing()
    assert truth.GetOrigin() == t1ce.GetOrigin()
    assert truth.GetDirection() == t1ce.GetDirection()
    directions = {s: np.asarray(grids[s].GetDirection()).reshape(3, 3) for s in SEQUENCES}
    assert np.allclose(directions["flair"], np.eye(3))
    assert np.allclose(directions["t2"], np.diag([-1.0, -1.0, 1.0]))
    assert not np.allclose(np.abs(directions["t1ce"]), np.round(np.abs(directions["t1ce"])))
    assert np.allclose(np.abs(directions["t1"][:, 2]), [1.0, 0.0, 0.0]), "T1 slices are sagittal"
    spacings = {s: grids[s].GetSpacing() for s in SEQUENCES}
    assert spacings["flair"][2] == pytest.approx(5 * 2.5) and spacings["t2"][0] == pytest.approx(0.5 * 2.5)
    labels, image = sitk.GetArrayFromImage(truth), sitk.GetArrayFromImage(t1ce).astype(float)
    et, ncr = labels == BRATS2021.values["et"], labels == BRATS2021.values["ncr"]
    assert et.any() or ncr.any()
    if et.sum() > 10 and ncr.sum() > 10:
        assert image[et].mean() > 1.3 * image[ncr].mean(), "labels misaligned with the T1ce"


def test_native_sequences_are_skull_stripped_on_their_own_grids():
    # Thick slices blur the brain's edge; brain extraction on each grid removes that halo again.
    case = generate_case(SEED, 1, MEDIUM, native=True)

    def brain_ml(image: sitk.Image) -> float:
        return float((sitk.GetArrayFromImage(image) != 0).sum() * np.prod(image.GetSpacing()) / 1000.0)

    brain = brain_ml(case.images["t1ce"])
    for sequence, image in case.native_images.items():
        assert brain_ml(image) == pytest.approx(brain, rel=0.03), sequence


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: generate_case(-1, 0, SMALL), "non-negative"),
        (lambda: generate_case(0, 0, (10, 10, 10)), "between"),
        (lambda: parse_size("64,64"), "three whole numbers"),
        (lambda: parse_size("64,x,48"), "three whole numbers"),
        (lambda: generate_case(0, 0, SMALL, convention="brats1999"), "Unknown label convention"),
    ],
)
def test_bad_requests_raise_the_project_error(call, message):
    with pytest.raises(MSTKDError, match=message):
        call()
