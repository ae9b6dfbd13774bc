"""Preflight of one input volume: every refusal names the sequence and says what to do."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from mstkd.errors import MSTKDError
from mstkd.preprocess import preflight
from mstkd.preprocess.preflight import (
    MAX_FIELD_OF_VIEW_MM,
    MAX_SPACING_MM,
    MIN_IN_PLANE_MM,
    MIN_SLAB_MM,
    MIN_SPACING_MM,
)


def volume(size=(96, 96, 30), spacing=(2.0, 2.0, 5.0), values=None) -> sitk.Image:
    """A float image with a smooth ramp (not constant), on a plain axial grid."""
    array = np.zeros(size[::-1], dtype=np.float32) if values is None else values
    if values is None:
        array += np.linspace(0.0, 100.0, size[0], dtype=np.float32)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    return image


def refused(name: str, image: sitk.Image, *fragments: str) -> str:
    with pytest.raises(MSTKDError) as caught:
        preflight(name, image)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_a_plausible_volume_passes():
    preflight("flair", volume())
    preflight("t1ce", sitk.Cast(volume(size=(120, 120, 90), spacing=(1.0, 1.0, 1.0)), sitk.sitkInt16))


def test_two_dimensional_images_and_single_slices_are_refused():
    flat = sitk.GetImageFromArray(np.random.default_rng(0).random((64, 64)).astype(np.float32))
    refused("t2", flat, "T2", "2D", "whole series")
    refused("t2", volume(size=(200, 200, 1)), "T2", "single slice", "whole series")


def test_four_dimensional_images_are_refused():
    series = sitk.JoinSeries([volume() for _ in range(5)])
    assert series.GetDimension() == 4
    refused("flair", series, "FLAIR", "4D", "5 volumes", "single 3D volume")


def test_colour_and_vector_images_are_refused():
    rgb = sitk.Image([96, 96, 30], sitk.sitkVectorUInt8, 3)
    rgb.SetSpacing((2.0, 2.0, 5.0))
    refused("t1", rgb, "T1", "3 values per voxel", "greyscale")
    refused("t1", sitk.Image([96, 96, 30], sitk.sitkComplexFloat32), "T1", "complex", "magnitude")


@pytest.mark.parametrize("bad, word", [(np.nan, "NaN"), (np.inf, "infinite"), (-np.inf, "infinite")])
def test_non_finite_values_are_refused(bad, word):
    image = volume()
    array = sitk.GetArrayFromImage(image)
    array[3, 10:12, 20] = bad
    broken = sitk.GetImageFromArray(array)
    broken.CopyInformation(image)
    refused("t1ce", broken, "T1Gd", f"2 {word}", "re-export")


def test_a_constant_volume_is_refused():
    blank = volume(values=np.full((30, 96, 96), 7, dtype=np.int16))
    refused("flair", blank, "FLAIR", "is 7", "blank")


@pytest.mark.parametrize(
    "spacing",
    [(MIN_SPACING_MM / 2, 1.0, 1.0), (1.0, 1.0, 2 * MAX_SPACING_MM), (0.001, 0.001, 0.005)],
)
def test_absurd_spacing_is_refused(spacing):
    refused("t2", volume(spacing=spacing), "T2", "voxel spacing", "units")


def test_a_field_of_view_too_small_for_a_brain_is_refused():
    side = int(MIN_IN_PLANE_MM / 2 / 1.0) - 1
    refused("flair", volume(size=(side, side, 40), spacing=(1.0, 1.0, 2.0)), "FLAIR", "in-plane", "crop")
    refused("flair", volume(size=(96, 96, 2), spacing=(2.0, 2.0, 5.0)), "FLAIR", "2 slices", "whole series")
    thin = int(MIN_SLAB_MM / 5.0) - 1
    refused("flair", volume(size=(96, 96, thin), spacing=(2.0, 2.0, 5.0)), "FLAIR", f"{thin} slices")
    wide = int(MAX_FIELD_OF_VIEW_MM / 2.0) + 10
    refused("t1", volume(size=(wide, 96, 30), spacing=(2.0, 2.0, 5.0)), "T1", "crop it to the head")


def test_the_slice_axis_is_the_thickest_one_whatever_its_index():
    # A sagittal stack: thick voxels along i, so i is the slice axis (40 x 5 mm = 200 mm covered).
    preflight("t2", volume(size=(40, 120, 120), spacing=(5.0, 1.5, 1.5)))
    refused("t2", volume(size=(4, 120, 120), spacing=(5.0, 1.5, 1.5)), "4 slices")


def test_a_sheared_orientation_is_refused():
    image = volume()
    image.SetDirection((1.0, 0.5, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    refused("t1", image, "T1", "not a rotation", "re-export")


def test_something_else_than_an_image_is_refused():
    refused("t1", np.zeros((10, 10, 10)), "T1", "ndarray", "load the volume")
