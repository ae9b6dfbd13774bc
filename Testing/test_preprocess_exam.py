"""prepare_exam / labels_to_reference on phantom exams: BraTS-style, clinical (native) grids, subsets."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from mstkd.conventions import SEQUENCES
from mstkd.errors import MSTKDError
from mstkd.imageio import image_to_array, same_grid
from mstkd.intensity import normalise_sequences
from mstkd.phantom import generate_case
from mstkd.phantom.generate import STREAMS
from mstkd.phantom.grid import brats_grid
from mstkd.phantom.native import patient_motion
from mstkd.preprocess import labels_to_model, labels_to_reference, prepare_exam
from mstkd.preprocess.grid import IDENTITY_DIRECTION
from mstkd.preprocess.registration import rotation_degrees

# 2 mm phantom voxels: the native grids keep clinical slice thicknesses (FLAIR 10 mm, T2 8 mm),
# which the preflight accepts; the BraTS-like grid is 2 mm isotropic.
SHAPE = (120, 120, 78)
SEED, INDEX = 7, 0
MODEL_SPACING = (2.0, 2.0, 2.0)


@pytest.fixture(scope="module")
def case():
    return generate_case(SEED, INDEX, SHAPE, native=True)


@pytest.fixture(scope="module")
def reports():
    return []


@pytest.fixture(scope="module")
def native_exam(case, reports):
    return prepare_exam(case.native_images, MODEL_SPACING, report=lambda *r: reports.append(r))


def phantom_motions():
    """The patient motion of each native sequence (scanner -> phantom points), drawn as the phantom does."""
    streams = np.random.SeedSequence([SEED, INDEX]).spawn(len(STREAMS))
    rng = np.random.default_rng(streams[STREAMS.index("native")])
    centre = brats_grid(SHAPE).centre
    motions = {}
    for sequence in SEQUENCES:
        rng.uniform(size=3)  # the field of view's shift
        motions[sequence] = patient_motion(rng, centre)
    return motions, centre


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def test_brats_style_inputs_pass_through_without_resampling(case):
    exam = prepare_exam(case.images, MODEL_SPACING)
    assert not exam.resampled and not exam.registrations
    assert same_grid(exam.model_grid, case.images["t1ce"], tolerance=0.0)
    raw = np.stack([case.array(s).astype(np.float32) for s in SEQUENCES])
    assert np.array_equal(exam.image, normalise_sequences(raw, (True,) * 4))
    assert "flair, t1, t2 share the t1ce grid: not registered" in exam.steps
    assert any("on the model grid already" in step and "no resampling" in step for step in exam.steps)
    labels = case.array("seg")
    back = labels_to_reference(labels, exam)
    assert np.array_equal(image_to_array(back), labels)
    assert same_grid(back, case.labels, tolerance=0.0)


def test_a_clinical_exam_is_registered_and_resampled_to_the_model_grid(case, native_exam, reports):
    exam = native_exam
    assert exam.reference_name == "t1ce" and exam.reference is case.native_images["t1ce"]
    assert exam.present == (True,) * 4 and exam.subset.sequences == SEQUENCES
    assert exam.model_grid.GetDirection() == IDENTITY_DIRECTION
    assert exam.model_grid.GetSpacing() == MODEL_SPACING
    assert exam.image.shape == (4, *exam.model_grid.GetSize()) and exam.image.dtype == np.float32
    assert exam.resampled and sorted(exam.registrations) == ["flair", "t1", "t2"]
    for sequence in ("flair", "t1", "t2"):
        assert any(step.startswith(f"registered {sequence} to t1ce: rotation ") for step in exam.steps)
    for channel in exam.image:
        covered = channel != 0  # each sequence is z-scored over the part of the brain it covers
        assert not channel[~exam.mask].any() and covered.sum() > 0.9 * exam.mask.sum()
        assert abs(channel[covered].mean()) < 1e-3 and abs(channel[covered].std() - 1) < 1e-3
    fractions = [fraction for _, fraction in reports]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and reports[-1] == ("prepared", 1.0)
    assert any(stage == "registering t2 to t1ce" for stage, _ in reports)


def test_registrations_of_the_native_sequences_match_the_phantoms_motion(native_exam):
    motions, centre = phantom_motions()
    reference = motions["t1ce"]
    point = reference.GetInverse().TransformPoint(centre.tolist())  # the brain's centre, t1ce scanner frame
    for sequence, found in native_exam.registrations.items():
        # reference point -> sequence point (found) -> phantom point must equal reference -> phantom.
        moved = motions[sequence].TransformPoint(found.transform.TransformPoint(point))
        left = sitk.Euler3DTransform()
        matrix = (
            np.reshape(motions[sequence].GetMatrix(), (3, 3))
            @ np.reshape(found.transform.GetMatrix(), (3, 3))
            @ np.reshape(reference.GetMatrix(), (3, 3)).T
        )
        left.SetMatrix(matrix.ravel().tolist())
        # Thick slices (FLAIR 10 mm, T2 8 mm) pin the through-plane tilt less well.
        assert rotation_degrees(left) < 1.5, sequence
        assert np.linalg.norm(np.subtract(moved, centre)) < 1.5, sequence


def test_the_sequences_line_up_with_the_tumour_on_the_model_grid(case, native_exam):
    truth = labels_to_model(case.native_labels, native_exam)
    oedema, enhancing = truth == 2, truth == 4
    healthy = native_exam.mask & (truth == 0)
    image = dict(zip(SEQUENCES, native_exam.image))
    for sequence in ("flair", "t2"):
        assert image[sequence][oedema].mean() > image[sequence][healthy].mean() + 0.5, sequence
    assert image["t1ce"][enhancing].mean() > image["t1"][enhancing].mean() + 0.5


def test_labels_go_back_onto_the_reference_grid_exactly(case, native_exam):
    on_model = labels_to_model(case.native_labels, native_exam)
    back = labels_to_reference(on_model, native_exam)
    reference = case.native_images["t1ce"]
    assert back.GetPixelID() == sitk.sitkUInt8 and back.GetSize() == reference.GetSize()
    for get in ("GetSpacing", "GetOrigin", "GetDirection"):
        assert getattr(back, get)() == getattr(reference, get)()
    truth, returned = image_to_array(case.native_labels), image_to_array(back)
    assert dice(truth > 0, returned > 0) > 0.9
    assert set(np.unique(returned)) <= set(np.unique(truth))


def test_one_sequence_alone_needs_no_registration(case):
    flair = case.native_images["flair"]
    exam = prepare_exam({"T2-FLAIR": flair}, MODEL_SPACING)
    assert exam.reference_name == "flair" and exam.present == (True, False, False, False)
    assert not exam.registrations and not any("registered" in step for step in exam.steps)
    assert not exam.image[1:].any() and exam.image[0].any()
    assert "t1, t1ce, t2 absent (zero)" in exam.steps[-1]
    back = labels_to_reference(np.ones(exam.model_grid.GetSize(), np.uint8), exam)
    assert same_grid(back, flair, tolerance=0.0)
    assert image_to_array(back).all()


def test_a_subset_with_an_overridden_reference(case):
    images = {"t1ce": case.native_images["t1ce"], "t2w": case.native_images["t2"]}
    exam = prepare_exam(images, MODEL_SPACING, reference="T2")
    assert exam.reference_name == "t2" and exam.present == (False, False, True, True)
    assert list(exam.registrations) == ["t1ce"]
    assert not exam.image[:2].any()
    back = labels_to_reference(np.zeros(exam.model_grid.GetSize(), np.uint8), exam)
    assert same_grid(back, case.native_images["t2"], tolerance=0.0)


def test_bad_inputs_are_refused_before_any_work(case):
    broken = sitk.Cast(case.native_images["t2"], sitk.sitkFloat32)
    broken[5, 5, 5] = float("nan")
    with pytest.raises(MSTKDError, match="T2 volume holds 1 NaN"):
        prepare_exam({"t1ce": case.native_images["t1ce"], "t2": broken}, MODEL_SPACING)
    with pytest.raises(MSTKDError, match="not among the inputs"):
        prepare_exam({"t1ce": case.native_images["t1ce"]}, MODEL_SPACING, reference="flair")
    with pytest.raises(MSTKDError, match="three positive numbers"):
        prepare_exam({"t1ce": case.native_images["t1ce"]}, (1.0, 1.0))
