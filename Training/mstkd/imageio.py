"""Reading and writing NIfTI and NRRD images through SimpleITK, geometry intact."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Tuple, Union

import numpy as np
import SimpleITK as sitk

from mstkd.errors import MSTKDError

PathLike = Union[str, "os.PathLike[str]"]

IMAGE_EXTENSIONS: Tuple[str, ...] = (".nii.gz", ".nii", ".nrrd", ".nhdr")


def image_extension(path: PathLike) -> Optional[str]:
    """The supported image extension a file name ends with (case-insensitive), or None."""
    name = Path(path).name.lower()
    return next((ext for ext in IMAGE_EXTENSIONS if name.endswith(ext)), None)


def strip_image_extension(path: PathLike) -> str:
    """A file's name without its image extension: 'a_t1.nii.gz' -> 'a_t1'."""
    name = Path(path).name
    extension = image_extension(name)
    return name[: -len(extension)] if extension else name


def read_image(path: PathLike) -> sitk.Image:
    """Read one image file; a missing, unsupported or unreadable file raises MSTKDError."""
    path = Path(path)
    if not path.is_file():
        raise MSTKDError(f"Image file not found: {path}. Check the path.")
    if image_extension(path) is None:
        raise MSTKDError(
            f"{path.name} is not a supported image file; use one of {', '.join(IMAGE_EXTENSIONS)}."
        )
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise MSTKDError(
            f"Could not read {path}: it is damaged or not an image ({first_line(error)})."
        ) from None


def read_spacing(path: PathLike) -> Tuple[float, ...]:
    """The voxel spacing of an image file, read from its header alone."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise MSTKDError(f"Could not read the header of {path} ({first_line(error)}).") from None
    return reader.GetSpacing()


def write_image(image: sitk.Image, path: PathLike, compress: bool = True) -> Path:
    """Write an image (format from the extension), creating the folder; returns the path."""
    path = Path(path)
    if image_extension(path) is None:
        raise MSTKDError(
            f"Cannot write {path.name}: name the output with one of {', '.join(IMAGE_EXTENSIONS)}."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), useCompression=compress)
    return path


def image_to_array(image: sitk.Image) -> np.ndarray:
    """Voxel array in index order (i, j, k), the order of every tensor in this project.

    SimpleITK hands out (k, j, i); transposing here keeps that detail in one place.
    """
    return sitk.GetArrayFromImage(image).transpose(2, 1, 0)


def array_to_image(array: np.ndarray, reference: Optional[sitk.Image] = None) -> sitk.Image:
    """An (i, j, k) array as an image, with the grid of `reference` when given."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    if reference is not None:
        if image.GetSize() != reference.GetSize():
            raise ValueError(f"array size {image.GetSize()} differs from the reference {reference.GetSize()}")
        image.CopyInformation(reference)
    return image


def same_grid(a: sitk.Image, b: sitk.Image, tolerance: float = 1e-4) -> bool:
    """True when two images share size, spacing, origin and direction (within tolerance)."""
    if a.GetSize() != b.GetSize():
        return False
    pairs = zip(
        (a.GetSpacing(), a.GetOrigin(), a.GetDirection()), (b.GetSpacing(), b.GetOrigin(), b.GetDirection())
    )
    return all(abs(x - y) <= tolerance * max(1.0, abs(x)) for u, v in pairs for x, y in zip(u, v))


def describe_grid(image: sitk.Image) -> str:
    """A one-line description of an image's grid, for error messages."""
    spacing = "x".join(f"{s:g}" for s in image.GetSpacing())
    origin = ", ".join(f"{o:.1f}" for o in image.GetOrigin())
    return f"size {image.GetSize()}, spacing {spacing} mm, origin ({origin})"


def first_line(error: BaseException) -> str:
    """The first non-empty line of an exception's message (SimpleITK's are long)."""
    return next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
