"""`mstkd segment` against bad inputs and faults: one line, exit 2, nothing written, nothing changed.

Each row of the table runs the command in a fresh folder holding a real phantom exam and a
real tiny model, and checks the exit status, the first line of the message, and that the folder
is byte for byte as before (no output, no partial file, no input changed). Rows refused for
their inputs or outputs must be refused before the model is loaded. The tests after the table
check what must succeed: warnings that land in the summary, replacing mstkd's own files, batch
resume, a detached-header output that survives a later run, and a clean stop on SIGTERM.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from bad_images import (
    PIXDIM,
    SROW_X,
    SROW_Z,
    as_plain_nifti,
    nifti_claiming,
    non_utf8_name,
    nrrd_with_header,
    patched_nifti,
    truncated,
    with_values,
)
from faults import (
    ENOSPC_WHEN_FLUSHED,
    EROFS_WHEN_FLUSHED,
    Row,
    check_row,
    check_table,
    fail_when_flushed,
    no_model,
    read_only,
    run_command,
    small_disk,
    snapshot,
)

from mstkd.checkpoint import load_checkpoint, save_checkpoint
from mstkd.errors import MSTKDError
from mstkd.files import sha256_of

CASE, OTHER = "BraTS2021_00002", "BraTS2021_00003"
SEQUENCE_FILES = ("flair", "t1", "t1ce", "t2", "seg")


@dataclass
class Exam:
    """A folder with one exam's files (flair.nii.gz, ..., seg.nii.gz), another patient's T2, a model."""

    folder: Path
    model: Path
    other_t2: Path

    def __getattr__(self, name: str) -> str:
        if name in SEQUENCE_FILES:
            return str(self.folder / f"{name}.nii.gz")
        raise AttributeError(name)

    def path(self, name: str) -> Path:
        return self.folder / name

    def model_with(self, edit, name: str = "edited.safetensors") -> str:
        """A copy of the model re-saved (digest recomputed) with its metadata changed by `edit`."""
        checkpoint = load_checkpoint(self.model)
        metadata = {k: v for k, v in checkpoint.metadata.items() if not k.endswith("sha256")}
        edit(metadata)
        save_checkpoint(self.path(name), checkpoint.state_dict, metadata)
        return str(self.path(name))

    def model_with_raw_metadata(self, text: str) -> str:
        """A copy of the model whose metadata block is replaced by `text` (no digest recomputed)."""
        from safetensors.torch import load, save

        self.path("raw.safetensors").write_bytes(
            save(load(self.model.read_bytes()), metadata={"mstkd": text})
        )
        return str(self.path("raw.safetensors"))


@pytest.fixture
def exam(phantom_root, tiny_model_file, tmp_path) -> Exam:
    folder = tmp_path / "exam"
    folder.mkdir()
    for name in SEQUENCE_FILES:
        shutil.copy(phantom_root / CASE / f"{CASE}_{name}.nii.gz", folder / f"{name}.nii.gz")
    return Exam(folder, tiny_model_file, phantom_root / OTHER / f"{OTHER}_t2.nii.gz")


def user_image(e: Exam, name: str) -> str:
    """A file of the user's that is not an input: an image written by another program."""
    sitk.WriteImage(sitk.ReadImage(e.t2), str(e.path(name)))
    return str(e.path(name))


def out(e: Exam, name: str = "labels.nii.gz") -> str:
    return str(e.path(name))


def flair_and(e: Exam, *more: str) -> list:
    return ["--flair", e.flair, *more]


def dicom_folder(e: Exam) -> str:
    folder = e.path("dicom")
    folder.mkdir()
    for index in range(3):
        (folder / f"IM{index:04d}").write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 64)
    return str(folder)


def fill(value):
    def edit(values):
        values[values.shape[0] // 2, 20:24, 20:24] = value

    return edit


def noise(values):
    values[...] = np.random.default_rng(0).uniform(1, 1000, values.shape)


def blob(values):
    values[...] = 0
    values[10:14, 10:14, 10:14] = np.arange(64).reshape(4, 4, 4) + 1


def single_voxel(values):
    values[...] = 0
    values[20, 20, 20] = 1


ROWS = [
    # Outputs that would lose what the user had.
    Row(
        "output-is-an-input",
        lambda e: flair_and(e, "-o", e.flair),
        r"-o .*flair.nii.gz would overwrite the input --flair",
    ),
    Row(
        "output-is-an-input-through-a-link",
        lambda e: (os.symlink(e.flair, e.path("link.nii.gz")), flair_and(e, "-o", out(e, "link.nii.gz")))[1],
        r"-o .*link.nii.gz would overwrite the input --flair",
    ),
    Row(
        "output-is-an-input-by-another-path",
        lambda e: flair_and(e, "-o", str(e.path("sub/../flair.nii.gz"))),
        r"-o .* would overwrite the input --flair",
    ),
    Row(
        "output-is-an-input-even-with-overwrite",
        lambda e: flair_and(e, "-o", e.flair, "--overwrite"),
        r"-o .* would overwrite the input --flair",
    ),
    Row(
        "summary-is-an-input",
        lambda e: flair_and(e, "--t1ce", e.t1ce, "-o", out(e), "--summary", e.t1ce),
        r"--summary .*t1ce.nii.gz would overwrite the input --t1ce",
    ),
    Row(
        "summary-over-a-user-image",
        lambda e: flair_and(e, "-o", out(e), "--summary", user_image(e, "mine.nii.gz")),
        r".*mine.nii.gz exists and is not a summary written by mstkd; .* --overwrite",
    ),
    Row(
        "output-is-the-summary",
        lambda e: flair_and(e, "-o", out(e), "--summary", out(e)),
        r"-o and --summary both name",
    ),
    Row(
        "output-over-a-user-file",
        lambda e: flair_and(e, "-o", user_image(e, "labels.nii.gz")),
        r".*labels.nii.gz exists and is not a label map written by mstkd; .* --overwrite",
    ),
    Row(
        "output-voxel-file-is-the-users",
        lambda e: (e.path("labels.raw.gz").write_bytes(b"mine"), flair_and(e, "-o", out(e, "labels.nhdr")))[
            1
        ],
        r".*labels.raw.gz exists and is not a label map's voxel file written by mstkd",
    ),
    Row(
        "output-is-a-folder",
        lambda e: (e.path("x.nii.gz").mkdir(), flair_and(e, "-o", out(e, "x.nii.gz")))[1],
        r".*x.nii.gz is a folder; give the label map's file name",
    ),
    Row(
        "summary-is-a-folder",
        lambda e: (e.path("s").mkdir(), flair_and(e, "-o", out(e), "--summary", out(e, "s")))[1],
        r".*/s is a folder; give the file name of the summary",
    ),
    Row(
        "output-in-a-folder-that-is-a-file",
        lambda e: flair_and(e, "-o", e.flair + "/labels.nii.gz"),
        r".*flair.nii.gz is a file, so the folder .* cannot be created",
    ),
    Row(
        "output-without-image-extension",
        lambda e: flair_and(e, "-o", out(e, "labels.png")),
        r"Cannot write the label map to .*labels.png: name it with one of",
    ),
    Row("output-missing", lambda e: flair_and(e), r"Name the label map to write with -o"),
    Row(
        "disk-full-when-the-label-map-is-flushed",
        lambda e: flair_and(e, "-o", out(e)),
        r"No space left on the disk of .*labels.nii.gz",
        fault=ENOSPC_WHEN_FLUSHED,
        before_model=False,
    ),
    Row(
        "disk-full-when-writing-into-new-folders",
        lambda e: flair_and(
            e, "-o", out(e, "results/a/labels.nii.gz"), "--summary", out(e, "results/b/s.json")
        ),
        r"No space left on the disk of .*results/a/labels.nii.gz",
        fault=ENOSPC_WHEN_FLUSHED,
        before_model=False,
    ),
    Row(
        "disk-full-when-the-summary-is-flushed",
        lambda e: flair_and(e, "-o", out(e), "--summary", out(e, "s.json")),
        r"No space left on the disk of .*s.json",
        fault=fail_when_flushed(errno.ENOSPC, ".json"),
        before_model=False,
    ),
    Row(
        "file-system-turns-read-only-at-the-write",
        lambda e: flair_and(e, "-o", out(e), "--summary", out(e, "s.json")),
        r".*labels.nii.gz is on a read-only file system",
        fault=EROFS_WHEN_FLUSHED,
        before_model=False,
    ),
    Row(
        "no-permission-at-the-write",
        lambda e: flair_and(e, "-o", out(e)),
        r"No permission to write .*labels.nii.gz",
        fault=fail_when_flushed(errno.EACCES),
        before_model=False,
    ),
    # Inputs that used to be read as something they are not.
    Row(
        "truncated-nii-gz",
        lambda e: flair_and(e, "--t2", str(truncated(Path(e.t2), e.path("t2cut.nii.gz"))), "-o", out(e)),
        r"Could not read .*t2cut.nii.gz: its compressed data end early",
    ),
    Row(
        "truncated-nii",
        lambda e: [
            "--flair",
            str(truncated(as_plain_nifti(Path(e.flair), e.path("f.nii")), e.path("fcut.nii"))),
            "-o",
            out(e),
        ],
        r"Could not read .*fcut.nii: it is truncated: its header announces \d+ bytes of voxels, the file",
    ),
    Row(
        "nan-in-nifti",
        lambda e: ["--flair", str(with_values(Path(e.flair), e.path("nan.nii"), fill(np.nan))), "-o", out(e)],
        r"Could not read .*nan.nii: it holds 16 NaN voxel values",
    ),
    Row(
        "infinity-in-nifti-gz",
        lambda e: [
            "--flair",
            str(with_values(Path(e.flair), e.path("inf.nii.gz"), fill(np.inf))),
            "-o",
            out(e),
        ],
        r"Could not read .*inf.nii.gz: it holds 16 infinite voxel values",
    ),
    Row(
        "nan-in-nrrd",
        lambda e: [
            "--flair",
            str(with_values(Path(e.flair), e.path("nan.nrrd"), fill(np.nan))),
            "-o",
            out(e),
        ],
        r"Could not read .*nan.nrrd: it holds 16 NaN",
    ),
    Row(
        "pixdim-zero",
        lambda e: [
            "--flair",
            str(patched_nifti(Path(e.flair), e.path("p0.nii.gz"), PIXDIM + 4, "f", (0.0,))),
            "-o",
            out(e),
        ],
        r"Could not read .*p0.nii.gz: its header gives a voxel size of 0x",
    ),
    Row(
        "pixdim-nan",
        lambda e: [
            "--flair",
            str(patched_nifti(Path(e.flair), e.path("pn.nii.gz"), PIXDIM + 8, "f", (np.nan,))),
            "-o",
            out(e),
        ],
        r"Could not read .*pn.nii.gz: its header gives a voxel size of",
    ),
    Row(
        "singular-sform",
        lambda e: [
            "--flair",
            str(patched_nifti(Path(e.flair), e.path("sing.nii.gz"), SROW_Z, "4f", (0, 0, 0, 0))),
            "-o",
            out(e),
        ],
        r"Could not read .*sing.nii.gz: its orientation matrix \(sform\) is singular",
    ),
    Row(
        "sheared-sform",
        lambda e: [
            "--flair",
            str(patched_nifti(Path(e.flair), e.path("shear.nii.gz"), SROW_X + 4, "f", (1.5,))),
            "-o",
            out(e),
        ],
        r"Could not read .*shear.nii.gz: its orientation \(sform\) is sheared",
    ),
    Row(
        "nrrd-singular-directions",
        lambda e: [
            "--flair",
            str(
                nrrd_with_header(
                    Path(e.flair), e.path("d.nrrd"), b"(3.75,0,0) (0,3.75,0)", b"(3.75,0,0) (3.75,0,0)"
                )
            ),
            "-o",
            out(e),
        ],
        r"Could not read .*d.nrrd: its orientation \(direction\) matrix is singular",
    ),
    Row(
        "nrrd-zero-spacing",
        lambda e: [
            "--flair",
            str(
                nrrd_with_header(
                    Path(e.flair), e.path("z.nrrd"), b"(3.75,0,0) (0,3.75,0)", b"(0,0,0) (0,3.75,0)"
                )
            ),
            "-o",
            out(e),
        ],
        r"Could not read .*z.nrrd: its voxel spacing is 0 mm",
    ),
    Row(
        "nrrd-header-garbled",
        lambda e: [
            "--flair",
            str(nrrd_with_header(Path(e.flair), e.path("g.nrrd"), b"sizes: 64 64 48", b"sizes: 64 64")),
            "-o",
            out(e),
        ],
        r"Could not read .*g.nrrd: its NRRD header or data are invalid",
    ),
    Row(
        "truncated-nrrd",
        lambda e: [
            "--flair",
            str(
                truncated(
                    nrrd_with_header(Path(e.flair), e.path("n.nrrd"), b"NRRD", b"NRRD"), e.path("ncut.nrrd")
                )
            ),
            "-o",
            out(e),
        ],
        r"Could not read .*ncut.nrrd: it is truncated",
    ),
    Row(
        "empty-file",
        lambda e: (
            e.path("empty.nii.gz").write_bytes(b""),
            ["--flair", out(e, "empty.nii.gz"), "-o", out(e)],
        )[1],
        r"Could not read .*empty.nii.gz: it is damaged or not an image",
    ),
    Row(
        "two-options-for-flair",
        lambda e: ["--flair", e.flair, "--t2f", e.t2, "-o", out(e)],
        r"--flair and --t2f both give the flair sequence; give each sequence once",
    ),
    Row(
        "two-options-for-t1ce",
        lambda e: ["--t1gd", e.t1ce, "--t1c", e.t1ce, "-o", out(e)],
        r"--t1gd and --t1c both give the t1ce sequence",
    ),
    Row(
        "one-option-twice",
        lambda e: ["--t2", e.t2, "--t2", e.flair, "-o", out(e)],
        r"--t2 and --t2 both give the t2 sequence",
    ),
    Row(
        "label-map-as-flair",
        lambda e: ["--flair", e.seg, "--t2", e.t2, "-o", out(e)],
        r"The FLAIR volume holds only \d distinct values \(0, 1, 2, 4\): it is a label map or mask",
    ),
    Row(
        "mask-as-t2",
        lambda e: [
            "--t2",
            str(with_values(Path(e.t2), e.path("mask.nii.gz"), lambda v: v.__setitem__(Ellipsis, v > 0))),
            "-o",
            out(e),
        ],
        r"The T2 volume holds only 2 distinct values",
    ),
    Row(
        "pure-noise",
        lambda e: ["--t1", str(with_values(Path(e.t1), e.path("noise.nii.gz"), noise)), "-o", out(e)],
        r"The T1 volume looks like pure noise",
    ),
    Row(
        "single-non-zero-voxel",
        lambda e: ["--t1", str(with_values(Path(e.t1), e.path("dot.nii.gz"), single_voxel)), "-o", out(e)],
        r"The T1 volume is almost blank",
    ),
    Row(
        "small-blob",
        lambda e: ["--t1", str(with_values(Path(e.t1), e.path("blob.nii.gz"), blob)), "-o", out(e)],
        r"The T1 volume is almost blank",
    ),
    Row(
        "same-file-twice",
        lambda e: ["--flair", e.flair, "--t2", e.flair, "-o", out(e)],
        r"The FLAIR and T2 volumes are the same image",
    ),
    Row(
        "same-image-in-two-files",
        lambda e: (
            shutil.copy(e.flair, e.path("copy.nii.gz")),
            ["--flair", e.flair, "--t1", out(e, "copy.nii.gz"), "-o", out(e)],
        )[1],
        r"The FLAIR and T1 volumes are the same image",
    ),
    # Model files whose metadata are wrong.
    Row(
        "model-spacing-edited",
        lambda e: flair_and(e, "-o", out(e), "--model", edited_spacing(e)),
        r"The metadata of the model file .* do not match the digest",
        before_model=False,
    ),
    Row(
        "model-metadata-not-json",
        lambda e: flair_and(e, "-o", out(e), "--model", e.model_with_raw_metadata("{spacing: 2")),
        r"The metadata of the model file .* are not a JSON object",
        before_model=False,
    ),
    Row(
        "model-metadata-a-list",
        lambda e: flair_and(e, "-o", out(e), "--model", e.model_with_raw_metadata("[1, 2]")),
        r"The metadata of the model file .* are not a JSON object",
        before_model=False,
    ),
    Row(
        "model-spacing-a-string",
        lambda e: flair_and(e, "-o", out(e), "--model", e.model_with(lambda m: m.update(spacing="2,2,2"))),
        r"The model file .* has invalid metadata: its spacing is '2,2,2'",
        before_model=False,
    ),
    Row(
        "model-spacing-negative",
        lambda e: flair_and(e, "-o", out(e), "--model", e.model_with(lambda m: m.update(spacing=[2, -2, 2]))),
        r"The model file .* has invalid metadata: The model's voxel spacing must be",
        before_model=False,
    ),
    Row(
        "model-labels-unknown",
        lambda e: flair_and(e, "-o", out(e), "--model", e.model_with(lambda m: m.update(labels="brats1999"))),
        r"The model file .* has invalid metadata: Unknown label convention 'brats1999'",
        before_model=False,
    ),
    Row(
        "model-sequences-reordered",
        lambda e: flair_and(
            e,
            "-o",
            out(e),
            "--model",
            e.model_with(lambda m: m.update(sequences=["t2", "t1", "t1ce", "flair"])),
        ),
        r"The model file .* was trained with sequences",
        before_model=False,
    ),
    Row(
        "model-without-spacing",
        lambda e: flair_and(e, "-o", out(e), "--model", e.model_with(lambda m: m.pop("spacing"))),
        r"The model file .* lacks the metadata spacing",
        before_model=False,
    ),
    Row(
        "model-configuration-broken",
        lambda e: flair_and(
            e, "-o", out(e), "--model", e.model_with(lambda m: m["experiment"].update(patch="big"))
        ),
        r"The model file .* has invalid metadata: 'patch' must be a list",
        before_model=False,
    ),
    Row(
        "model-is-a-folder",
        lambda e: flair_and(e, "-o", out(e), "--model", str(e.model.parent)),
        r"--model .* is a folder \(it holds .*student.safetensors",
    ),
    Row(
        "model-truncated",
        lambda e: flair_and(e, "-o", out(e), "--model", str(truncated(e.model, e.path("cut.safetensors")))),
        r".*cut.safetensors is not a readable mstkd checkpoint",
        before_model=False,
    ),
    Row(
        "model-unknown-name",
        lambda e: flair_and(e, "-o", out(e), "--model", "no-such-model"),
        r"'no-such-model' is neither a model file nor a model in the registry",
    ),
    # Inputs that used to give tracebacks or unclear messages.
    Row(
        "input-is-a-folder",
        lambda e: ["--flair", str(e.folder), "-o", out(e, "o/labels.nii.gz")],
        r".*exam is a folder; give the image file itself",
    ),
    Row(
        "input-is-a-dicom-folder",
        lambda e: ["--flair", dicom_folder(e), "-o", out(e)],
        r".*dicom is a folder of DICOM files; convert the series to NIfTI first",
    ),
    Row(
        "input-name-not-utf8",
        lambda e: ["--flair", str(non_utf8_name(e.folder, Path(e.flair))), "-o", out(e)],
        r"The path b'.*scan\\xff_flair.nii.gz' is not valid UTF-8 text",
    ),
    Row(
        "input-claims-a-huge-volume",
        lambda e: ["--flair", str(nifti_claiming(e.path("huge.nii"), (30000, 30000, 30000))), "-o", out(e)],
        r"The FLAIR volume .*huge.nii has 30000 x 30000 x 30000 voxels and needs about [\d.]+ GB of memory",
    ),
    Row(
        "input-missing",
        lambda e: ["--flair", out(e, "absent.nii.gz"), "-o", out(e)],
        r"Image file not found: .*absent.nii.gz",
    ),
    Row(
        "input-not-an-image-format",
        lambda e: (e.path("scan.png").write_bytes(b"\x89PNG"), ["--flair", out(e, "scan.png"), "-o", out(e)])[
            1
        ],
        r"scan.png is not a supported image file",
    ),
    Row(
        "input-4d",
        lambda e: ["--flair", str(four_d(e)), "-o", out(e)],
        r"The FLAIR volume is 4D \(3 volumes in one file",
    ),
    Row(
        "input-rgb",
        lambda e: ["--flair", str(rgb(e)), "-o", out(e)],
        r"The FLAIR volume has 3 values per voxel",
    ),
    Row("no-sequence", lambda e: ["-o", out(e)], r"Give at least one sequence"),
    Row(
        "reference-not-given",
        lambda e: flair_and(e, "-o", out(e), "--reference", "t1ce"),
        r"The reference 't1ce' \(t1ce\) is not among the inputs",
    ),
    Row(
        "sequences-with-one-exam",
        lambda e: flair_and(e, "-o", out(e), "--sequences", "flair"),
        r"--sequences goes with --input-dir",
    ),
    Row(
        "labels-unknown",
        lambda e: flair_and(e, "-o", out(e), "--labels", "brats1999"),
        r"argument --labels: invalid choice: 'brats1999'",
    ),
    Row("device-unknown", lambda e: flair_and(e, "-o", out(e), "--device", "tpu"), r"Unknown device 'tpu'"),
    Row(
        "out-of-memory-while-preparing",
        lambda e: flair_and(e, "-o", out(e)),
        r"not enough memory \(RAM\)",
        fault=lambda m, f: m.setattr("mstkd.inference.predictor.prepare_exam", out_of_memory),
        before_model=False,
    ),
    # A folder of cases.
    Row(
        "batch-output-folder-is-a-file",
        lambda e: ["--input-dir", str(e.folder), "--output-dir", e.flair],
        r".*flair.nii.gz is a file; give a folder for the label maps",
    ),
    Row(
        "batch-input-folder-missing",
        lambda e: ["--input-dir", out(e, "none"), "--output-dir", out(e, "p")],
        r".*none",
    ),
    Row(
        "batch-with-one-exam-options",
        lambda e: ["--input-dir", str(e.folder), "--output-dir", out(e, "p"), "-o", out(e)],
        r"-o name\(s\) one exam; with --input-dir, leave them out",
    ),
    Row(
        "batch-without-output-folder",
        lambda e: ["--input-dir", str(e.folder)],
        r"A folder of cases needs both --input-dir DIR and --output-dir DIR",
    ),
]


def edited_spacing(e: Exam) -> str:
    """The model with its spacing edited in place, its recorded digests left as they were."""
    from safetensors.torch import load, save

    payload = e.model.read_bytes()
    size = int.from_bytes(payload[:8], "little")
    metadata = json.loads(json.loads(payload[8 : 8 + size])["__metadata__"]["mstkd"])
    metadata["spacing"] = [s * 1.25 for s in metadata["spacing"]]
    e.path("edited.safetensors").write_bytes(save(load(payload), metadata={"mstkd": json.dumps(metadata)}))
    return str(e.path("edited.safetensors"))


def four_d(e: Exam) -> Path:
    volume = sitk.ReadImage(e.flair)
    series = sitk.JoinSeries([volume] * 3)
    sitk.WriteImage(series, str(e.path("series.nii.gz")))
    return e.path("series.nii.gz")


def rgb(e: Exam) -> Path:
    volume = sitk.Cast(sitk.RescaleIntensity(sitk.ReadImage(e.flair)), sitk.sitkUInt8)
    sitk.WriteImage(sitk.Compose(volume, volume, volume), str(e.path("rgb.nrrd")))
    return e.path("rgb.nrrd")


def out_of_memory(*args, **kwargs):
    raise MemoryError()


@pytest.mark.parametrize("row", [row.param() for row in ROWS])
def test_segment_refuses_with_one_line_and_leaves_everything_as_it_was(row, exam, capsys, monkeypatch):
    if row.before_model:
        no_model(monkeypatch)
    model = sha256_of(exam.model)
    with_defaults = Row(**{**vars(row), "arguments": lambda e: with_model(e, row.arguments(e))})
    stdout, _ = check_row(with_defaults, "segment", exam, exam.folder, capsys, monkeypatch)
    assert sha256_of(exam.model) == model
    assert all(json.loads(line) for line in stdout.splitlines())  # stdout stays JSON lines only


def with_model(e: Exam, arguments: list) -> list:
    """A row's arguments with the tiny model, the CPU and JSON progress unless it gives its own."""
    model = [] if "--model" in arguments else ["--model", str(e.model)]
    device = [] if "--device" in arguments else ["--device", "cpu"]
    return [*arguments, *model, *device, "--progress", "jsonl"]


def test_the_table_holds_distinct_rows():
    check_table(ROWS, 60)


def test_a_read_only_output_folder_is_refused_before_the_model_loads(exam, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "readonly"
    folder.mkdir()
    no_model(monkeypatch)
    with read_only(folder):
        status, first, _, _ = run_command(
            capsys, "segment", ["--flair", exam.flair, "-o", folder / "labels.nii.gz", "--model", exam.model]
        )
        assert status == 2 and "read-only file system" in first, first
        assert list(folder.iterdir()) == []


def test_a_disk_too_full_for_the_label_map_is_refused_before_the_model_loads(
    exam, tmp_path, capsys, monkeypatch
):
    disk = tmp_path / "disk"
    no_model(monkeypatch)
    with small_disk(disk, "64k"):
        status, first, _, _ = run_command(
            capsys, "segment", ["--flair", exam.flair, "-o", disk / "labels.nii.gz", "--model", exam.model]
        )
        assert status == 2 and re.search(r"The disk of .* has 0.\d MB free, less than the", first), first
        assert list(disk.iterdir()) == []


def test_a_disk_that_fills_up_while_writing_leaves_no_file(exam, tmp_path, capsys, monkeypatch):
    """A real full disk (the space check passed, then another program took the space): the label map
    that ITK writes without an error, cut short, is caught by the read-back and removed."""
    import mstkd.inference.output

    disk = tmp_path / "disk"
    monkeypatch.setattr(mstkd.inference.output, "check_space", lambda *args: None, raising=False)
    with small_disk(disk, "64k"):
        filler = disk / "filler"
        filler.write_bytes(b"\0" * (shutil.disk_usage(disk).free - 4096))
        status, first, _, _ = run_command(
            capsys,
            "segment",
            ["--flair", exam.flair, "--t2", exam.t2, "-o", disk / "labels.nii.gz", "--model", exam.model],
        )
        assert status == 2, first
        assert re.match(
            r"mstkd segment: error: (No space left on the disk|Writing .*labels.nii.gz failed)", first
        )
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]


# What must succeed, and say what it found.


def segment(capsys, *arguments) -> tuple:
    status, first, out_text, err = run_command(capsys, "segment", [*map(str, arguments), "--device", "cpu"])
    return status, out_text, err


def test_another_patients_scan_on_the_same_grid_is_segmented_with_a_warning_in_output_and_summary(
    exam, capsys
):
    summary = exam.path("s.json")
    status, _, err = segment(
        capsys, "--flair", exam.flair, "--t2", exam.other_t2, "-o", out(exam), "--summary", summary,
        "--model", exam.model,
    )  # fmt: skip
    assert status == 0, err
    warning = "the brains of FLAIR and T2 overlap by only"
    assert f"mstkd segment: warning: {warning}" in err
    assert any(w.startswith(warning) for w in json.loads(summary.read_text())["warnings"])


def test_a_model_file_of_the_older_format_is_used_with_a_warning_unless_the_registry_vouches(
    exam, capsys, tmp_path, monkeypatch
):
    def older(metadata):
        metadata.pop("content_sha256")
        metadata["format_version"] = 1

    from test_checkpoint import rewrite_metadata

    old = exam.path("old.safetensors")
    shutil.copy(exam.model, old)
    rewrite_metadata(old, older)
    summary = exam.path("s.json")
    status, _, err = segment(
        capsys, "--flair", exam.flair, "-o", out(exam), "--summary", summary, "--model", old
    )
    assert status == 0, err
    assert "written by an older mstkd whose digest covers its weights but not its metadata" in err
    assert "older mstkd" in json.loads(summary.read_text())["warnings"][0]

    # Registered by its sha256 (as the bundled demo model is), a copy anywhere is fully verified.
    models = tmp_path / "Resources" / "models"
    models.mkdir(parents=True)
    entry = {
        "name": "old", "file": "old.safetensors", "sha256": sha256_of(old), "size": old.stat().st_size,
        "spacing": [3.75] * 3, "training_data": "phantoms", "intended_use": "tests", "description": "v1",
    }  # fmt: skip
    (models / "registry.json").write_text(json.dumps({"format_version": 1, "models": [entry]}))
    monkeypatch.setenv("MSTKD_RESOURCES", str(models.parent))
    status, _, err = segment(
        capsys, "--flair", exam.flair, "-o", out(exam), "--summary", summary, "--model", old
    )
    assert status == 0 and "older mstkd" not in err, err
    vouched = json.loads(summary.read_text())
    assert vouched["model"]["name"] == "old" and not any("older mstkd" in w for w in vouched["warnings"])


def test_mstkd_replaces_its_own_outputs_and_others_only_with_overwrite(exam, capsys):
    labels, summary = out(exam), exam.path("s.json")
    arguments = ["--flair", exam.flair, "-o", labels, "--summary", summary, "--model", exam.model]
    assert segment(capsys, *arguments)[0] == 0
    assert segment(capsys, *arguments)[0] == 0  # a re-run replaces its own label map and summary
    user_image(exam, "labels.nii.gz")
    assert segment(capsys, *arguments)[0] == 2
    status, _, err = segment(capsys, *arguments, "--overwrite")
    assert status == 0, err
    assert sorted(p.name for p in exam.folder.iterdir()) == sorted(
        [*(f"{n}.nii.gz" for n in SEQUENCE_FILES), "labels.nii.gz", "s.json"]
    )


def test_a_detached_header_output_keeps_its_voxels_through_a_later_run(exam, capsys):
    """NRRD's .nhdr keeps its voxels in .raw.gz: it is written and renamed whole, so a later run
    (which removes what dead writers left) finds nothing to delete."""
    outputs = exam.path("out")
    assert (
        segment(capsys, "--flair", exam.flair, "-o", outputs / "labels.nhdr", "--model", exam.model)[0] == 0
    )
    assert sorted(p.name for p in outputs.iterdir()) == ["labels.nhdr", "labels.raw.gz"]
    assert segment(capsys, "--t2", exam.t2, "-o", outputs / "second.nii.gz", "--model", exam.model)[0] == 0
    assert "removed" not in capsys.readouterr().err
    assert sitk.ReadImage(str(outputs / "labels.nhdr")).GetSize() == sitk.ReadImage(exam.flair).GetSize()


def test_a_single_run_removes_what_a_killed_run_left_beside_its_output(exam, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftovers = [
        exam.path(f".labels.nii.gz.partial-{dead.pid}.x1y2"),  # a staging folder
        exam.path(f".labels.partial-{dead.pid}.nii.gz"),  # a file of an earlier version
    ]
    leftovers[0].mkdir()
    (leftovers[0] / "labels.nii.gz").write_bytes(b"half a label map")
    leftovers[1].write_bytes(b"half a label map")
    alive = exam.path(f".labels.partial-{os.getpid()}.nii.gz")
    alive.write_bytes(b"being written")
    status, _, err = segment(capsys, "--flair", exam.flair, "-o", out(exam), "--model", exam.model)
    assert status == 0, err
    assert not any(p.exists() for p in leftovers) and alive.exists()
    assert err.count("half-written by an interrupted run") == 2


def test_a_batch_redoes_empty_and_damaged_outputs_and_refuses_a_users_file(
    exam, phantom_root, tmp_path, capsys
):
    cases, outputs = tmp_path / "cases", tmp_path / "predictions"
    names = ("BraTS2021_00003", "BraTS2021_00004", "BraTS2021_00005")
    for case in names:
        shutil.copytree(phantom_root / case, cases / case)
    outputs.mkdir()
    (outputs / f"{names[0]}.nii.gz").write_bytes(b"")  # what an older version left on a full disk
    user_image(exam, "mine.nii.gz")
    shutil.copy(exam.path("mine.nii.gz"), outputs / f"{names[1]}.nii.gz")  # the user's own file
    arguments = ["--input-dir", cases, "--output-dir", outputs, "--sequences", "t2", "--model", exam.model]

    status, printed, err = segment(capsys, *arguments)
    assert status == 1
    assert "2 case(s) segmented, 0 skipped (already written), 1 failed" in printed
    assert re.search(
        rf"case {names[1]}: .*{names[1]}.nii.gz exists and is not a label map written by mstkd", err
    )
    assert sha256_of(outputs / f"{names[1]}.nii.gz") == sha256_of(exam.path("mine.nii.gz"))

    truncated(outputs / f"{names[2]}.nii.gz", outputs / f"{names[2]}.nii.gz")  # damaged since
    status, printed, err = segment(capsys, *arguments, "--overwrite")
    assert status == 0, err
    assert "2 case(s) segmented, 1 skipped (already written), 0 failed" in printed
    for case in names:
        assert sitk.ReadImage(str(outputs / f"{case}.nii.gz")).GetSize() == (64, 64, 48)


def test_a_read_only_batch_output_folder_is_refused_before_the_model_loads(
    exam, tmp_path, capsys, monkeypatch
):
    folder = tmp_path / "predictions"
    folder.mkdir()
    no_model(monkeypatch)
    with read_only(folder):
        status, _, err = segment(
            capsys, "--input-dir", exam.folder, "--output-dir", folder, "--model", exam.model
        )
    assert status == 2 and "read-only file system" in err, err


# `mstkd segment` in a process of its own that, once it has read the exam, waits for a line on its
# standard input before it segments: the signal cannot come after the end (a tiny model segments in
# well under a second, faster than a busy machine may schedule the test's `kill`).
HELD_AFTER_READING = """
import sys
import mstkd.preprocess.inputs as inputs
from mstkd.cli.main import entry

read_exam = inputs.read_exam

def read_then_wait(*args, **kwargs):
    exam = read_exam(*args, **kwargs)
    sys.stdin.readline()
    return exam

inputs.read_exam = read_then_wait
sys.argv[0] = "mstkd"
entry()
"""


def test_sigterm_while_segmenting_exits_143_and_leaves_no_file(exam):
    labels = exam.path("labels.nii.gz")
    command = [sys.executable, "-c", HELD_AFTER_READING, "segment", "--flair", exam.flair, "--t2", exam.t2]
    command += ["-o", str(labels), "--model", str(exam.model), "--device", "cpu", "--progress", "jsonl"]
    before = snapshot(exam.folder)
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    running = subprocess.Popen(command, text=True, **pipes)
    assert '"stage": "load"' in running.stdout.readline()  # it is reading the exam
    running.send_signal(signal.SIGTERM)
    _, err = running.communicate(timeout=120)
    assert running.returncode == 128 + signal.SIGTERM, err
    assert "mstkd segment: stopped by SIGTERM" in err and "Traceback" not in err
    assert snapshot(exam.folder) == before


def test_sigterm_in_the_middle_of_a_write_leaves_no_partial_file(exam, capsys, monkeypatch):
    import mstkd.files

    flush = mstkd.files._flush_to_disk

    def terminated_while_flushing(path):
        flush(path)
        os.kill(os.getpid(), signal.SIGTERM)  # as a scheduler or the Slicer module's Cancel does

    monkeypatch.setattr(mstkd.files, "_flush_to_disk", terminated_while_flushing)
    before = snapshot(exam.folder)
    status, out_text, err = segment(capsys, "--flair", exam.flair, "-o", out(exam), "--model", exam.model)
    assert status == 128 + signal.SIGTERM and "stopped by SIGTERM" in err
    assert snapshot(exam.folder) == before


def test_a_failed_label_map_commit_removes_the_summary_and_a_two_file_brain_mask(tmp_path, monkeypatch):
    import mstkd.files
    from mstkd.inference.output import write_result
    from mstkd.inference.result import SegmentationResult

    grid = sitk.Image(8, 8, 8, sitk.sitkUInt8)
    result = SegmentationResult(
        labels=grid,
        label_convention="brats2021",
        volumes_ml={"NCR": 0.0, "ED": 0.0, "ET": 0.0, "WT": 0.0, "TC": 0.0},
        sequences=("flair",),
        reference="flair",
        model_name="test",
        model_path=tmp_path / "model.safetensors",
        model_sha256="0" * 64,
        device="cpu",
        timings_s={},
        steps=[],
        brain_mask=grid,
    )
    replace = os.replace

    def failing_for_the_label_map(source, target, *args, **kwargs):
        if Path(target).name == "labels.nii.gz":
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(target))
        replace(source, target, *args, **kwargs)

    monkeypatch.setattr(mstkd.files.os, "replace", failing_for_the_label_map)
    outputs = tmp_path / "out"
    outputs.mkdir()
    with pytest.raises(MSTKDError):
        write_result(result, outputs / "labels.nii.gz", outputs / "s.json", brain_mask=outputs / "brain.nhdr")
    assert sorted(p.name for p in outputs.iterdir()) == []
