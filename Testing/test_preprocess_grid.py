"""The model grid (identity direction, model spacing, covering the reference) and the way back."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

from mstkd.conventions import SUBSETS
from mstkd.errors import MSTKDError
from mstkd.imageio import image_to_array, same_grid
from mstkd.preprocess.exam import PreparedExam, labels_to_model, labels_to_reference
from mstkd.preprocess.grid import IDENTITY_DIRECTION, is_model_grid, model_grid, physical_corners


def empty(size, spacing, direction=None, origin=(10.0, -20.0, 30.0)) -> sitk.Image:
    direction = np.eye(3) if direction is None else direction
    image = sitk.Image(list(size), sitk.sitkUInt8)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection([float(d) for d in np.asarray(direction).ravel()])
    return image


OBLIQUE = Rotation.from_euler("xyz", (14.0, -5.0, 30.0), degrees=True).as_matrix()
SAGITTAL = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def exam_on(reference: sitk.Image, spacing) -> PreparedExam:
    grid = model_grid(reference, spacing)
    return PreparedExam(np.zeros((4, *grid.GetSize()), np.float32), SUBSETS[-1], grid, reference, "t1ce", [])


def test_an_identity_grid_at_the_model_spacing_is_the_model_grid():
    reference = empty((60, 70, 40), (1.0, 1.0, 1.0))
    assert is_model_grid(reference, (1, 1, 1))
    grid = model_grid(reference, (1.0, 1.0, 1.0 + 1e-6))
    assert same_grid(grid, reference, tolerance=0.0)
    assert not is_model_grid(reference, (2, 2, 2))
    assert not is_model_grid(empty((60, 70, 40), (1, 1, 1), direction=np.diag([-1.0, -1.0, 1.0])), (1, 1, 1))


@pytest.mark.parametrize(
    "size, spacing, direction",
    [((50, 40, 30), (0.9, 0.9, 3.0), OBLIQUE), ((36, 64, 64), (1.2, 1.0, 1.0), SAGITTAL)],
)
def test_the_model_grid_covers_the_reference_tightly(size, spacing, direction):
    reference = empty(size, spacing, direction)
    grid = model_grid(reference, (2.0, 2.0, 2.0))
    assert grid.GetDirection() == IDENTITY_DIRECTION
    assert grid.GetSpacing() == (2.0, 2.0, 2.0)
    corners, edges = physical_corners(reference), physical_corners(grid)
    low, high = edges.min(axis=0), edges.max(axis=0)
    assert (corners >= low - 1e-6).all() and (corners <= high + 1e-6).all()
    # One voxel fewer along any axis would not cover: sizes are rounded up, not padded.
    extent = corners.max(axis=0) - corners.min(axis=0)
    assert ((high - low) - extent < 2.0 + 1e-6).all()
    assert np.allclose((low + high) / 2, (corners.min(axis=0) + corners.max(axis=0)) / 2)


def test_the_model_spacing_must_be_three_positive_numbers():
    reference = empty((20, 20, 20), (1, 1, 1))
    for spacing in ((1, 1), (1, 0, 1), (1, -1, 1), (1, float("nan"), 1)):
        with pytest.raises(MSTKDError, match="three positive numbers"):
            model_grid(reference, spacing)


def test_labels_land_on_the_reference_grid_exactly():
    reference = empty((50, 40, 30), (0.9, 0.9, 3.0), OBLIQUE)
    exam = exam_on(reference, (1.0, 1.0, 1.0))
    truth = np.zeros(reference.GetSize(), dtype=np.uint8)
    truth[10:35, 8:30, 5:20] = 2
    truth[18:26, 14:22, 9:15] = 4
    truth_image = sitk.GetImageFromArray(truth.transpose(2, 1, 0))
    truth_image.CopyInformation(reference)
    back = labels_to_reference(labels_to_model(truth_image, exam), exam)
    assert back.GetPixelID() == sitk.sitkUInt8
    assert back.GetSize() == reference.GetSize()
    for get in ("GetSpacing", "GetOrigin", "GetDirection"):
        assert getattr(back, get)() == getattr(reference, get)()
    returned = image_to_array(back)
    for value in (2, 4):
        a, b = truth == value, returned == value
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.9


def test_labels_of_the_wrong_shape_or_range_are_refused():
    exam = exam_on(empty((20, 20, 20), (1, 1, 1)), (1, 1, 1))
    with pytest.raises(ValueError, match="not on the model grid"):
        labels_to_reference(np.zeros((20, 20, 19), np.uint8), exam)
    with pytest.raises(ValueError, match="0-255"):
        labels_to_reference(np.full((20, 20, 20), 300), exam)
