"""Reading and writing NIfTI and NRRD images through SimpleITK, geometry intact."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import SimpleITK as sitk

from mstkd.errors import MSTKDError
from mstkd.files import PathLike, StagedFile, check_writable, stage
from mstkd.nifti_check import check_nifti, is_nifti, non_finite, unreadable

IMAGE_EXTENSIONS: Tuple[str, ...] = (".nii.gz", ".nii", ".nrrd", ".nhdr")
# Where write_image marks an image as mstkd's (NIfTI keeps it as the header's description).
MARK_KEY = "ITK_FileNotes"
_DICOM_MAGIC = b"DICM"
_DICOM_PROBES = 200
_ITK_ERROR = re.compile(r"^(ITK ERROR|itk::ERROR): \w+\(0x[0-9a-fA-F]+\): (?P<message>.+)$")
# The last line of teem's NRRD error chain says what it found wrong: "[nrrd] _nrrdParse: what".
_NRRD_REASON = re.compile(r"^\[nrrd\] \w+: (?P<message>.+)$")
# ITK messages that mean something simple to a user.
_ITK_REASONS = (
    (
        "determinant is 0",
        "its orientation (direction) matrix is singular; the header is damaged, export it again",
    ),
    ("Zero-valued spacing", "its voxel spacing is 0 mm; the header is damaged, export it again"),
    ("data not read completely", "it is truncated (shorter than its header says); copy or export it again"),
    ("read failed", "it is truncated or damaged; copy or export it again"),
    ("fread got only", "it is truncated (shorter than its header says); copy or export it again"),
    ("Unable to determine ImageIO reader", "it is damaged or not an image"),
)
# ITK's warnings (e.g. "unexpected scales in sform") would land on stderr amid our messages; the
# checks above report what matters about a file instead.
sitk.ProcessObject.SetGlobalWarningDisplay(False)


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
    """Read one image file; a missing, unsupported, damaged or truncated file raises MSTKDError.

    NIfTI files are checked byte for byte first (see mstkd.nifti_check); every format is refused
    when it holds NaN or infinite voxel values.
    """
    path = _readable_image_path(path)
    if is_nifti(path):
        check_nifti(path)
    try:
        image = sitk.ReadImage(sitk_path(path))
    except RuntimeError as error:
        raise unreadable(path, itk_reason(error)) from None
    _check_finite(path, image)
    return image


def read_header(path: PathLike) -> sitk.ImageFileReader:
    """The header of an image file (size, spacing, pixel type), read without its voxels."""
    path = _readable_image_path(path)
    if is_nifti(path):
        check_nifti(path, data=False)
    reader = sitk.ImageFileReader()
    reader.SetFileName(sitk_path(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise MSTKDError(f"Could not read the header of {path}: {itk_reason(error)}.") from None
    return reader


def read_spacing(path: PathLike) -> Tuple[float, ...]:
    """The voxel spacing of an image file, read from its header alone."""
    return read_header(path).GetSpacing()


def write_image(image: sitk.Image, path: PathLike, kind: str, compress: bool = True) -> Path:
    """Write an image (format from the extension) marked as mstkd's `kind`, verified by reading it back.

    The mark (ITK_FileNotes, NIfTI's description) lets a later run tell its own outputs, which
    it may replace, from files it must not touch (`is_ours`).
    """
    return stage_image(image, path, kind, compress).commit()


def stage_image(image: sitk.Image, path: PathLike, kind: str, compress: bool = True) -> StagedFile:
    """`write_image` up to the rename: the checked file waits for `commit()` (see mstkd.files)."""
    path = Path(path)
    if image_extension(path) is None:
        raise MSTKDError(
            f"Cannot write {path.name}: name the output with one of {', '.join(IMAGE_EXTENSIONS)}."
        )
    sitk_path(path)
    marked = sitk.Image(image)
    marked.SetMetaData(MARK_KEY, mark(kind))
    expected = _voxel_digest(image)

    def write(staged: Path) -> None:
        try:
            sitk.WriteImage(marked, sitk_path(staged), useCompression=compress)
        except RuntimeError as error:
            check_writable(path.parent, image_bytes(image))  # a full or read-only disk says so
            raise MSTKDError(f"Could not write {path}: {itk_reason(error)}.") from None

    def verify(staged: Path) -> None:
        try:
            back = read_image(staged)
        except MSTKDError as error:
            raise MSTKDError(f"Writing {path} failed (is the disk full?): {error}") from None
        if not same_grid(back, image) or _voxel_digest(back) != expected:
            raise MSTKDError(f"Writing {path} failed: the file reads back differently; nothing was written.")

    return stage(path, write, verify)


def is_ours(path: PathLike, kind: str) -> bool:
    """True when an image file carries mstkd's mark for `kind` (see write_image)."""
    try:
        reader = read_header(path)
    except MSTKDError:
        return False
    return reader.HasMetaDataKey(MARK_KEY) and reader.GetMetaData(MARK_KEY).strip() == mark(kind)


def mark(kind: str) -> str:
    """The text mstkd writes into the header of an image of a kind ('label map', 'phantom')."""
    return f"mstkd {kind}"


def sitk_path(path: PathLike) -> str:
    """A path as SimpleITK takes it; a name that is not valid UTF-8 would abort the process there."""
    text = os.fspath(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise MSTKDError(
            f"The path {text.encode('utf-8', 'surrogateescape')!r} is not valid UTF-8 text, which the "
            "image library cannot open; rename the file (or its folder) with plain characters."
        ) from None
    return text


def itk_reason(error: BaseException) -> str:
    """What an ITK exception says went wrong, without its C++ source location and object address."""
    text = str(error)
    for pattern, reason in _ITK_REASONS:
        if pattern in text:
            return reason
    nrrd = [m.group("message") for m in map(_NRRD_REASON.match, text.splitlines()) if m]
    if nrrd:
        return f"its NRRD header or data are invalid ({nrrd[-1].strip()})"
    for line in text.splitlines():
        match = _ITK_ERROR.match(line.strip())
        if match:
            return match.group("message").strip().rstrip(".:")
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and ".cxx:" not in line and ".hxx:" not in line
    ]
    return lines[0] if lines else "it is damaged or not an image"


def is_dicom_folder(folder: PathLike) -> bool:
    """True when the folder holds DICOM files (checked by their 'DICM' preamble) and no NIfTI/NRRD file."""
    folder = Path(folder)
    probed = 0
    found = False
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        if image_extension(path):
            return False
        if not found and probed < _DICOM_PROBES:
            probed += 1
            found = _has_dicom_preamble(path)
    return found


def _has_dicom_preamble(path: Path) -> bool:
    try:
        with open(path, "rb") as stream:
            stream.seek(128)
            return stream.read(4) == _DICOM_MAGIC
    except OSError:
        return False


def _readable_image_path(path: PathLike) -> Path:
    path = Path(path)
    if path.is_dir():
        if is_dicom_folder(path):
            raise MSTKDError(
                f"{path} is a folder of DICOM files; convert the series to NIfTI first (e.g. dcm2niix), "
                "or load it in 3D Slicer's DICOM module and segment it there."
            )
        raise MSTKDError(f"{path} is a folder; give the image file itself (NIfTI or NRRD).")
    if not path.is_file():
        raise MSTKDError(f"Image file not found: {path}. Check the path.")
    if image_extension(path) is None:
        raise MSTKDError(
            f"{path.name} is not a supported image file; use one of {', '.join(IMAGE_EXTENSIONS)}."
        )
    return path


def _check_finite(path: Path, image: sitk.Image) -> None:
    values = sitk.GetArrayViewFromImage(image)
    if values.dtype.kind not in "fc":
        return
    nan, infinite = int(np.count_nonzero(np.isnan(values))), int(np.count_nonzero(np.isinf(values)))
    if nan or infinite:
        raise non_finite(path, nan, infinite)


def image_bytes(image: sitk.Image) -> int:
    """The size of an image's voxels, uncompressed: what its file takes at most, besides the header."""
    return (
        int(np.prod(image.GetSize()))
        * image.GetNumberOfComponentsPerPixel()
        * image.GetSizeOfPixelComponent()
    )


def _voxel_digest(image: sitk.Image) -> str:
    return hashlib.sha256(np.ascontiguousarray(sitk.GetArrayViewFromImage(image)).tobytes()).hexdigest()


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
