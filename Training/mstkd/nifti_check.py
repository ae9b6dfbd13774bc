"""The raw NIfTI header and data, checked before ITK's reader can hide what is wrong with them.

ITK's NIfTI reader reads a file that ends early as if the missing voxels were 0, turns NaN into
0, takes a voxel size of 0 mm as 1 mm and replaces a singular or sheared orientation by another
one, all without an error. These checks read the header (NIfTI-1 or NIfTI-2, either byte order)
and stream the voxel data once (through gzip's checksum for .nii.gz) so that each of those
becomes an MSTKDError that says what is wrong with the file.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Dict, Tuple

import numpy as np

from mstkd.errors import MSTKDError

# NIfTI datatype code -> numpy type of one voxel (its byte order set from the header).
DATATYPES: Dict[int, str] = {
    2: "u1", 4: "i2", 8: "i4", 16: "f4", 32: "c8", 64: "f8", 128: "u1",  # 128: RGB, 3 bytes
    256: "i1", 512: "u2", 768: "u4", 1024: "i8", 1280: "u8", 1792: "c16", 2304: "u1",  # 2304: RGBA
}  # fmt: skip
_VALUES_PER_VOXEL = {128: 3, 2304: 4}
_FLOATS = ("f4", "f8", "c8", "c16")
# Byte layout of the fields used here: (offset, struct format) for NIfTI-1 (348-byte header)
# and NIfTI-2 (540 bytes).
_LAYOUTS = {
    348: {"dim": (40, "8h"), "datatype": (70, "h"), "pixdim": (76, "8f"), "vox_offset": (108, "f"),
          "qform_code": (252, "h"), "sform_code": (254, "h"), "quatern": (256, "3f"),
          "srow": (280, "12f")},
    540: {"dim": (16, "8q"), "datatype": (12, "h"), "pixdim": (104, "8d"), "vox_offset": (168, "q"),
          "qform_code": (344, "i"), "sform_code": (348, "i"), "quatern": (352, "3d"),
          "srow": (400, "12d")},
}  # fmt: skip
_CHUNK = 1 << 22
_GZIP_MAGIC = b"\x1f\x8b"
# Orthogonality tolerance of the sform's columns, relative to their lengths.
_SHEAR_TOLERANCE = 1e-3


@dataclass(frozen=True)
class NiftiHeader:
    """The fields of a NIfTI header that decide where the voxels are and how many there are."""

    shape: Tuple[int, ...]
    dtype: np.dtype
    values_per_voxel: int
    pixdim: Tuple[float, ...]
    vox_offset: int
    sform_code: int
    srow: Tuple[float, ...]
    qform_code: int
    quatern: Tuple[float, float, float]

    @property
    def data_bytes(self) -> int:
        """The size of the voxel data the header announces."""
        return int(np.prod(self.shape)) * self.values_per_voxel * self.dtype.itemsize


def is_nifti(path: Path) -> bool:
    """True for a .nii or .nii.gz file name."""
    name = path.name.lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


def check_nifti(path: Path, data: bool = True) -> NiftiHeader:
    """Check the header (and, when `data`, the voxels) of a NIfTI file; MSTKDError says what is wrong."""
    with _open(path) as stream:
        try:
            header = _parse(path, stream.read(540))
            _check_geometry(path, header)
            if data:
                _check_data(path, header, stream)
        except (OSError, EOFError, zlib.error) as error:
            raise unreadable(
                path, f"its compressed data end early or are corrupt ({error}); copy or export it again"
            ) from None
    return header


def _open(path: Path) -> BinaryIO:
    """The file's bytes, decompressed when it starts like gzip (ITK reads a plain .nii.gz too)."""
    with open(path, "rb") as stream:
        compressed = stream.read(2) == _GZIP_MAGIC
    return gzip.open(path, "rb") if compressed else open(path, "rb")  # type: ignore[return-value]


def _parse(path: Path, raw: bytes) -> NiftiHeader:
    size, order = _size_and_order(path, raw)
    layout = _LAYOUTS[size]

    def field(name: str) -> Tuple:
        offset, form = layout[name]
        return struct.unpack_from(order + form, raw, offset)

    dim = field("dim")
    rank = dim[0]
    if not 1 <= rank <= 7 or any(n < 1 for n in dim[1 : rank + 1]):
        raise unreadable(path, f"its NIfTI header is invalid (dimensions {dim}); export it again")
    code = field("datatype")[0]
    if code not in DATATYPES:
        raise unreadable(path, f"it stores its voxels as NIfTI datatype {code}, which mstkd cannot read")
    (vox_offset,) = field("vox_offset")
    if not np.isfinite(vox_offset) or vox_offset < size:
        raise unreadable(path, f"its NIfTI header is invalid (data offset {vox_offset}); export it again")
    return NiftiHeader(
        shape=tuple(int(n) for n in dim[1 : rank + 1]),
        dtype=np.dtype(order + DATATYPES[code]),
        values_per_voxel=_VALUES_PER_VOXEL.get(code, 1),
        pixdim=field("pixdim"),
        vox_offset=int(vox_offset),
        sform_code=field("sform_code")[0],
        srow=field("srow"),
        qform_code=field("qform_code")[0],
        quatern=field("quatern"),
    )


def _size_and_order(path: Path, raw: bytes) -> Tuple[int, str]:
    """The header's size (348: NIfTI-1, 540: NIfTI-2) and byte order, from its first field."""
    if len(raw) >= 4:
        for order in ("<", ">"):
            size = struct.unpack_from(order + "i", raw)[0]
            if size in _LAYOUTS and len(raw) >= size:
                return size, order
    raise unreadable(path, "it is damaged or not an image (no complete NIfTI header)")


def _check_geometry(path: Path, header: NiftiHeader) -> None:
    spatial = min(len(header.shape), 3)
    spacing = np.asarray(header.pixdim[1 : spatial + 1], dtype=float)
    if not np.all(np.isfinite(spacing)) or np.any(spacing == 0):
        written = "x".join(f"{s:g}" for s in spacing)
        raise unreadable(
            path,
            f"its header gives a voxel size of {written} mm (pixdim), not a positive number; the header is "
            "damaged: export the file again",
        )
    if header.sform_code > 0:
        matrix = np.asarray(header.srow, dtype=float).reshape(3, 4)[:, :3]
        _check_matrix(path, matrix, "sform")
    elif header.qform_code > 0:
        quatern = np.asarray(header.quatern, dtype=float)
        if not np.all(np.isfinite(quatern)) or float(quatern @ quatern) > 1.0 + 1e-4:
            raise unreadable(
                path, f"its orientation (qform quaternion {tuple(quatern)}) is invalid; the header is damaged"
            )


def _check_matrix(path: Path, matrix: np.ndarray, name: str) -> None:
    lengths = np.linalg.norm(matrix, axis=0)
    if not np.all(np.isfinite(matrix)) or np.any(lengths == 0) or abs(np.linalg.det(matrix)) < 1e-12:
        raise unreadable(
            path, f"its orientation matrix ({name}) is singular; the header is damaged: export it again"
        )
    unit = matrix / lengths
    if not np.allclose(unit.T @ unit, np.eye(3), atol=_SHEAR_TOLERANCE):
        raise unreadable(
            path,
            f"its orientation ({name}) is sheared (axes not perpendicular), which a voxel grid cannot "
            "represent; resample it onto a grid without shear",
        )


def _check_data(path: Path, header: NiftiHeader, stream: BinaryIO) -> None:
    floats = header.dtype.kind in "fc"
    if not floats and _complete_on_record(path, stream, header.vox_offset + header.data_bytes):
        return  # integer voxels cannot be NaN, and the record of the file's length says it is whole
    stream.seek(header.vox_offset)
    expected = header.data_bytes
    found, nan, infinite = 0, 0, 0
    tail = b""  # bytes of a voxel split across two chunks
    while found < expected:
        chunk = stream.read(min(_CHUNK, expected - found))
        if not chunk:
            break
        found += len(chunk)
        if floats:
            chunk = tail + chunk
            usable = len(chunk) - len(chunk) % header.dtype.itemsize
            values = np.frombuffer(chunk[:usable], dtype=header.dtype)
            nan += int(np.count_nonzero(np.isnan(values)))
            infinite += int(np.count_nonzero(np.isinf(values)))
            tail = chunk[usable:]
    if found < expected:
        raise unreadable(
            path,
            f"it is truncated: its header announces {expected} bytes of voxels, the file holds {found} "
            f"({100 * found / expected:.0f}%); copy or export it again",
        )
    if isinstance(stream, gzip.GzipFile):
        while stream.read(_CHUNK):  # to the end of the gzip stream, so that its checksum is verified
            pass
    if nan or infinite:
        raise non_finite(path, nan, infinite)


def _complete_on_record(path: Path, stream: BinaryIO, length: int) -> bool:
    """True when the file's length on record, read without its contents, is `length` or more: its
    size, or for gzip the length its trailer records modulo 2**32 (the last 4 bytes; a file cut
    short ends in compressed data instead, which matches by chance once in 2**32). False means
    the contents must be read to tell."""
    if not isinstance(stream, gzip.GzipFile):
        return path.stat().st_size >= length
    with open(path, "rb") as raw:
        raw.seek(-4, 2)
        recorded = struct.unpack("<I", raw.read(4))[0]
    return recorded == length % (1 << 32)


def unreadable(path: Path, reason: str) -> MSTKDError:
    """The error for a file that cannot be used: `Could not read PATH: REASON.`"""
    return MSTKDError(f"Could not read {path}: {reason}.")


def non_finite(path: Path, nan: int, infinite: int) -> MSTKDError:
    """The error for an image holding NaN or infinite voxel values."""
    found = ", ".join(f"{n} {what}" for n, what in ((nan, "NaN"), (infinite, "infinite")) if n)
    return unreadable(
        path,
        f"it holds {found} voxel values; re-export it from the scanner data (a processing step wrote "
        "invalid numbers), or replace them with 0",
    )
