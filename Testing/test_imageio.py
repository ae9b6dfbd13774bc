"""Image files in every supported format keep their voxels and geometry."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from mstkd.errors import MSTKDError
from mstkd.imageio import array_to_image, image_to_array, read_image, same_grid, write_image


def oblique_image() -> sitk.Image:
    array = np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7)  # (i, j, k)
    image = array_to_image(array)
    image.SetSpacing((0.5, 1.25, 4.0))
    image.SetOrigin((-10.0, 20.5, 3.25))
    angle = np.deg2rad(12)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    image.SetDirection(tuple(rotation.ravel()))
    return image


@pytest.mark.parametrize("extension", [".nii.gz", ".nii", ".nrrd", ".nhdr"])
def test_round_trip_keeps_voxels_and_geometry(tmp_path, extension):
    image = oblique_image()
    path = write_image(image, tmp_path / "sub" / f"case_t1{extension}", "test image")
    back = read_image(path)
    assert same_grid(image, back)
    assert np.array_equal(image_to_array(back), image_to_array(image))
    assert image_to_array(back).shape == image.GetSize()


def test_unreadable_and_unsupported_files_get_clear_errors(tmp_path):
    with pytest.raises(MSTKDError, match="not found"):
        read_image(tmp_path / "absent.nii.gz")
    (tmp_path / "scan.png").write_bytes(b"\x89PNG")
    with pytest.raises(MSTKDError, match="not a supported image"):
        read_image(tmp_path / "scan.png")
    (tmp_path / "broken.nii.gz").write_bytes(b"not an image")
    with pytest.raises(MSTKDError, match="Could not read"):
        read_image(tmp_path / "broken.nii.gz")
    with pytest.raises(MSTKDError, match="Cannot write"):
        write_image(oblique_image(), tmp_path / "out.png", "test image")
