"""Damaged and implausible image files, made from a good one the way they arise in practice."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import SimpleITK as sitk

# Byte offsets in a NIfTI-1 header.
PIXDIM = 76
SROW_X, SROW_Z = 280, 312


def truncated(source: Path, target: Path, keep: float = 0.6) -> Path:
    """The first `keep` of a file's bytes, as a copy that stopped half-way leaves it."""
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * keep)])
    return target


def as_plain_nifti(source: Path, target: Path, dtype=np.float32) -> Path:
    """An image rewritten as uncompressed NIfTI (.nii) of a given voxel type."""
    image = sitk.ReadImage(str(source))
    converted = sitk.Cast(image, sitk.sitkFloat32 if dtype == np.float32 else sitk.sitkInt16)
    sitk.WriteImage(converted, str(target), useCompression=False)
    return target


def with_values(source: Path, target: Path, edit) -> Path:
    """An image whose float32 voxels (a (k, j, i) array) `edit` changed in place, on the same grid."""
    image = sitk.ReadImage(str(source))
    values = sitk.GetArrayFromImage(image).astype(np.float32)
    edit(values)
    changed = sitk.GetImageFromArray(values)
    changed.CopyInformation(image)
    sitk.WriteImage(changed, str(target), useCompression=str(target).endswith(".gz"))
    return target


def patched_nifti(source: Path, target: Path, offset: int, form: str, values) -> Path:
    """A NIfTI (.nii or .nii.gz) with header bytes at `offset` replaced (struct `form`, little-endian)."""
    compressed = source.name.endswith(".gz")
    data = bytearray(gzip.decompress(source.read_bytes()) if compressed else source.read_bytes())
    data[offset : offset + struct.calcsize("<" + form)] = struct.pack("<" + form, *values)
    target.write_bytes(gzip.compress(bytes(data)) if target.name.endswith(".gz") else bytes(data))
    return target


def nrrd_with_header(source: Path, target: Path, old: bytes, new: bytes) -> Path:
    """An image as an uncompressed NRRD whose header has `old` replaced by `new`."""
    sitk.WriteImage(sitk.ReadImage(str(source)), str(target), useCompression=False)
    data = target.read_bytes()
    header, _, body = data.partition(b"\n\n")
    assert old in header, header
    target.write_bytes(header.replace(old, new) + b"\n\n" + body)
    return target


def nifti_claiming(target: Path, shape) -> Path:
    """A NIfTI header announcing a huge float32 volume, with a few bytes of data."""
    image = sitk.Image([4, 4, 4], sitk.sitkFloat32)
    sitk.WriteImage(image, str(target), useCompression=False)
    data = bytearray(target.read_bytes())
    data[40:56] = struct.pack("<8h", 3, *shape, 1, 1, 1, 1)
    target.write_bytes(bytes(data))
    return target


def with_grid_of(source: Path, target: Path, array: np.ndarray) -> Path:
    """A (k, j, i) array written with the grid of `source`."""
    reference = sitk.ReadImage(str(source))
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    sitk.WriteImage(image, str(target))
    return target


def non_utf8_name(folder: Path, source: Path) -> Path:
    """A copy of `source` whose file name holds the byte 0xFF (valid on Linux, not UTF-8)."""
    target = os.fsencode(str(folder)) + b"/scan\xff_flair.nii.gz"
    with open(target, "wb") as stream:
        stream.write(source.read_bytes())
    return Path(os.fsdecode(target))
