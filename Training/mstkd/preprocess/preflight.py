"""Geometry and intensity preflight of one input volume: refuse what cannot be a brain MR sequence.

Every check names the sequence and says what to do, so that a user can fix the input without
reading a traceback. The thresholds are deliberately loose: they catch broken files and wrong
units, not unusual but valid protocols.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from mstkd.conventions import DISPLAY_NAMES
from mstkd.errors import MSTKDError

# Below 0.1 mm no MR scanner acquires a head (research 7 T reaches ~0.2 mm); such values
# usually mean a header written in centimetres or metres.
MIN_SPACING_MM = 0.1
# Thick 2D clinical slices reach 5-8 mm plus a gap (about 10 mm centre to centre); beyond that an
# axis holds too few samples to resample a brain from, or the header is in the wrong unit.
MAX_SPACING_MM = 10.0
# An adult brain is about 140 x 170 mm across; a volume narrower than 80 mm in both in-plane
# directions is a crop or a localiser, not an exam that shows the brain.
MIN_IN_PLANE_MM = 80.0
# A slab needs a few slices and a few centimetres (a tumour of interest is 1-8 cm) to be segmented.
MIN_SLICES = 3
MIN_SLAB_MM = 30.0
# A head fits in 300 mm; more than this is a body scan or a header in the wrong unit, and would
# make a model grid too large for memory.
MAX_FIELD_OF_VIEW_MM = 500.0
# Direction cosines of a valid image form a rotation (or reflection) matrix.
DIRECTION_TOLERANCE = 1e-3

_COMPLEX_TYPES = (sitk.sitkComplexFloat32, sitk.sitkComplexFloat64)


def preflight(name: str, image: sitk.Image) -> None:
    """Raise MSTKDError, naming the sequence and the fix, when `image` cannot be a 3D MR volume."""
    label = DISPLAY_NAMES.get(name, name)
    if not isinstance(image, sitk.Image):
        raise MSTKDError(
            f"The {label} input is a {type(image).__name__}, not an image; load the volume from its "
            "file (NIfTI, NRRD) or DICOM series."
        )
    _check_shape(label, image)
    _check_geometry(label, image)
    _check_values(label, image)


def _check_shape(label: str, image: sitk.Image) -> None:
    dimension = image.GetDimension()
    if dimension == 4:
        raise MSTKDError(
            f"The {label} volume is 4D ({image.GetSize()[3]} volumes in one file, e.g. a time series "
            "or diffusion directions); pass a single 3D volume (split the series and pick one)."
        )
    if dimension != 3:
        raise MSTKDError(
            f"The {label} image is {dimension}D (size {image.GetSize()}); a 3D volume is needed: "
            "load the whole series, not a single slice or screenshot."
        )
    if image.GetPixelID() in _COMPLEX_TYPES:
        raise MSTKDError(
            f"The {label} volume holds complex values; export the magnitude image and use that instead."
        )
    components = image.GetNumberOfComponentsPerPixel()
    if components > 1:
        raise MSTKDError(
            f"The {label} volume has {components} values per voxel (an RGB or vector image, e.g. a "
            "screenshot or a derived map); load the original greyscale MR volume instead."
        )
    if min(image.GetSize()) < 2:
        raise MSTKDError(
            f"The {label} volume is a single slice (size {image.GetSize()}); a 3D volume is needed: "
            "load the whole series (every slice), not one image of it."
        )


def _check_geometry(label: str, image: sitk.Image) -> None:
    spacing = np.asarray(image.GetSpacing(), dtype=float)
    written = "x".join(f"{s:g}" for s in spacing)
    if (spacing <= 0).any() or (spacing < MIN_SPACING_MM).any() or (spacing > MAX_SPACING_MM).any():
        raise MSTKDError(
            f"The {label} volume has a voxel spacing of {written} mm, outside the {MIN_SPACING_MM:g}-"
            f"{MAX_SPACING_MM:g} mm an MR volume of the head can have; check the header's units "
            "(millimetres expected) or use a thinner-slice acquisition."
        )
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    if not np.allclose(direction.T @ direction, np.eye(3), atol=DIRECTION_TOLERANCE):
        raise MSTKDError(
            f"The {label} volume's orientation (direction cosines) is not a rotation; its header is "
            "damaged or sheared: re-export it from the original DICOM series."
        )
    extent = spacing * np.asarray(image.GetSize(), dtype=float)
    size = image.GetSize()
    # The slice axis is the one with the thickest voxels (the last one when they tie).
    slice_axis = 2 - int(np.argmax(spacing[::-1]))
    in_plane = [axis for axis in range(3) if axis != slice_axis]
    if max(extent[in_plane]) < MIN_IN_PLANE_MM:
        covered = " x ".join(f"{extent[axis]:.0f}" for axis in in_plane)
        raise MSTKDError(
            f"The {label} volume covers only {covered} mm in-plane, too little to hold a brain "
            f"(at least {MIN_IN_PLANE_MM:g} mm needed); load the full acquisition rather than a crop, "
            "or check the header's spacing units."
        )
    if size[slice_axis] < MIN_SLICES or extent[slice_axis] < MIN_SLAB_MM:
        raise MSTKDError(
            f"The {label} volume has {size[slice_axis]} slices covering {extent[slice_axis]:.0f} mm; "
            f"at least {MIN_SLICES} slices over {MIN_SLAB_MM:g} mm are needed: load the whole series."
        )
    if max(extent) > MAX_FIELD_OF_VIEW_MM:
        raise MSTKDError(
            f"The {label} volume spans {max(extent):.0f} mm, more than a head "
            f"({MAX_FIELD_OF_VIEW_MM:g} mm at most); crop it to the head or check the header's units."
        )


def _check_values(label: str, image: sitk.Image) -> None:
    values = sitk.GetArrayViewFromImage(image)
    if np.issubdtype(values.dtype, np.floating):
        nan = int(np.count_nonzero(np.isnan(values)))
        infinite = int(np.count_nonzero(np.isinf(values)))
        if nan or infinite:
            found = ", ".join(f"{n} {what}" for n, what in ((nan, "NaN"), (infinite, "infinite")) if n)
            raise MSTKDError(
                f"The {label} volume holds {found} voxel values; re-export it from the scanner data "
                "(a processing step wrote invalid numbers), or replace them with 0 before segmenting."
            )
    low, high = values.min(), values.max()
    if low == high:
        raise MSTKDError(
            f"Every voxel of the {label} volume is {low:g}: the volume is blank; check that the right "
            "file or series was loaded and exported completely."
        )
