"""`mstkd evaluate` against bad inputs and faults: one line, exit 2, no report written, nothing changed.

Each row scores a one-case folder pair (ground truth and prediction, real label-map files) made
wrong in one way, and checks the exit status, the first line of the message, and that both
folders and the place of the reports are byte for byte as before.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from bad_images import PIXDIM, SROW_X, as_plain_nifti, patched_nifti, truncated, with_values
from faults import (
    ENOSPC_WHEN_FLUSHED,
    Row,
    check_row,
    check_table,
    fail_when_flushed,
    read_only,
    run_command,
)

from mstkd.imageio import array_to_image


def tumour(shape=(20, 24, 28), et: int = 4) -> np.ndarray:
    labels = np.zeros(shape, np.uint8)
    labels[4:16, 4:16, 4:16] = 2
    labels[6:12, 6:12, 6:12] = 1
    labels[8:10, 8:10, 8:10] = et
    return labels


def write_labels(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(array_to_image(array), str(path))
    return path


@dataclass
class Scoring:
    """A folder with gt/a/a_seg.nii.gz and pred/a.nii.gz (the same tumour), and room for reports."""

    folder: Path

    @property
    def gt(self) -> Path:
        return self.folder / "gt"

    @property
    def pred(self) -> Path:
        return self.folder / "pred"

    @property
    def truth(self) -> Path:
        return self.gt / "a" / "a_seg.nii.gz"

    @property
    def prediction(self) -> Path:
        return self.pred / "a.nii.gz"

    def path(self, name: str) -> Path:
        return self.folder / name

    def replace_prediction(self, make) -> list:
        """Put a damaged prediction in place of the good one; returns the usual arguments."""
        made = make(self.prediction, self.path("made"))
        self.prediction.unlink()
        for file in self.pred.iterdir():
            file.unlink()
        shutil.move(str(made), self.pred / made.name.replace("made", "a"))
        return self.folders()

    def folders(self, *more) -> list:
        return ["--gt", str(self.gt), "--pred", str(self.pred), *map(str, more)]


@pytest.fixture
def scoring(tmp_path) -> Scoring:
    setting = Scoring(tmp_path / "scoring")
    write_labels(setting.truth, tumour())
    write_labels(setting.prediction, tumour())
    return setting


def made(suffix: str, make):
    """A maker of a damaged prediction named made<suffix> from the good one."""
    return lambda good, target: make(good, target.with_name("made" + suffix))


def user_file(s: Scoring, name: str) -> str:
    s.path(name).write_text("my notes\n")
    return str(s.path(name))


def set_voxel(value):
    def edit(values):
        values[0, 0, 0] = value

    return edit


def negative_label(good: Path, target: Path) -> Path:
    labels = tumour().astype(np.int16)
    labels[0, 0, 0] = -1
    return write_labels(target.with_name("made.nii.gz"), labels)


def rgb_prediction(good: Path, target: Path) -> Path:
    image = sitk.ReadImage(str(good))
    sitk.WriteImage(sitk.Compose(image, image, image), str(target.with_name("made.nrrd")))
    return target.with_name("made.nrrd")


def non_utf8_case(s: Scoring) -> list:
    for folder, name in ((s.gt / "a", b"\xff_seg.nii.gz"), (s.pred, b"\xff.nii.gz")):
        with open(os.fsencode(str(folder)) + b"/" + name, "wb") as stream:
            stream.write(s.prediction.read_bytes())
    s.truth.unlink()
    s.prediction.unlink()
    return s.folders()


ROWS = [
    # A prediction or ground truth that used to be scored as something it is not.
    Row(
        "prediction-truncated-nii-gz",
        lambda s: s.replace_prediction(made(".nii.gz", truncated)),
        r"Could not read .*a.nii.gz: its compressed data end early",
    ),
    Row(
        "prediction-truncated-nii",
        lambda s: s.replace_prediction(
            lambda g, t: truncated(as_plain_nifti(g, t.with_name("plain.nii")), t.with_name("made.nii"))
        ),
        r"Could not read .*a.nii: it is truncated",
    ),
    Row(
        "ground-truth-truncated",
        lambda s: (truncated(s.truth, s.truth), s.folders())[1],
        r"Could not read .*a_seg.nii.gz: its compressed data end early",
    ),
    Row(
        "prediction-with-nan",
        lambda s: s.replace_prediction(made(".nii", lambda g, t: with_values(g, t, set_voxel(np.nan)))),
        r"Could not read .*a.nii: it holds 1 NaN voxel values",
    ),
    Row(
        "prediction-pixdim-zero",
        lambda s: s.replace_prediction(
            made(".nii.gz", lambda g, t: patched_nifti(g, t, PIXDIM + 4, "f", (0.0,)))
        ),
        r"Could not read .*a.nii.gz: its header gives a voxel size of 0x",
    ),
    Row(
        "prediction-sheared",
        lambda s: s.replace_prediction(
            made(".nii.gz", lambda g, t: patched_nifti(g, t, SROW_X + 4, "f", (0.7,)))
        ),
        r"Could not read .*a.nii.gz: its orientation \(sform\) is sheared",
    ),
    Row(
        "prediction-fractional-labels",
        lambda s: s.replace_prediction(made(".nii", lambda g, t: with_values(g, t, set_voxel(1.5)))),
        r"The prediction .*a.nii holds non-integer values",
    ),
    Row(
        "prediction-negative-label",
        lambda s: s.replace_prediction(negative_label),
        r"The prediction .*a.nii.gz holds label value\(s\) \[-1\]",
    ),
    Row(
        "prediction-rgb",
        lambda s: s.replace_prediction(rgb_prediction),
        r"The prediction .*a.nrrd has several components per voxel",
    ),
    Row(
        "prediction-empty-file",
        lambda s: (s.prediction.write_bytes(b""), s.folders())[1],
        r"Could not read .*a.nii.gz: it is damaged or not an image",
    ),
    Row(
        "prediction-is-a-folder",
        lambda s: (s.prediction.unlink(), s.prediction.mkdir(), s.folders())[2],
        r"No prediction in .* matches a case",
    ),
    Row("names-not-utf8", non_utf8_case, r"The path b'.*\\xff_seg.nii.gz' is not valid UTF-8 text"),
    # Reports that would overwrite what the user had.
    Row(
        "json-is-a-prediction",
        lambda s: s.folders("--json", s.prediction),
        r"--json .*a.nii.gz would overwrite the input prediction a.nii.gz",
    ),
    Row(
        "csv-is-the-ground-truth",
        lambda s: s.folders("--csv", s.truth),
        r"--csv .*a_seg.nii.gz would overwrite the input ground truth file a_seg.nii.gz",
    ),
    Row(
        "json-and-csv-the-same-file",
        lambda s: s.folders("--json", s.path("r"), "--csv", s.path("r")),
        r"--json and --csv both name",
    ),
    Row(
        "json-over-a-user-file",
        lambda s: s.folders("--json", user_file(s, "notes.json")),
        r".*notes.json exists and is not a report written by mstkd; .* --overwrite",
    ),
    Row(
        "csv-over-a-user-file",
        lambda s: s.folders("--csv", user_file(s, "notes.csv")),
        r".*notes.csv exists and is not a report written by mstkd",
    ),
    Row(
        "json-is-a-folder",
        lambda s: (s.path("r").mkdir(), s.folders("--json", s.path("r")))[1],
        r".*/r is a folder; give the file name of the report",
    ),
    Row(
        "csv-in-a-folder-that-is-a-file",
        lambda s: s.folders("--csv", s.truth / "r.csv"),
        r".*a_seg.nii.gz is a file, so the folder .* cannot be created",
    ),
    Row(
        "disk-full-when-the-json-is-flushed",
        lambda s: s.folders("--json", s.path("r.json")),
        r"No space left on the disk of .*r.json",
        fault=ENOSPC_WHEN_FLUSHED,
    ),
    Row(
        "disk-full-when-writing-into-a-new-folder",
        lambda s: s.folders("--csv", s.path("reports/2026/r.csv")),
        r"No space left on the disk of .*reports/2026/r.csv",
        fault=ENOSPC_WHEN_FLUSHED,
    ),
    Row(
        "read-only-when-the-csv-is-flushed",
        lambda s: s.folders("--json", s.path("r.json"), "--csv", s.path("r.csv")),
        r".*r.csv is on a read-only file system",
        fault=fail_when_flushed(errno.EROFS, ".csv"),
    ),
    # Folders and options.
    Row(
        "prediction-folder-missing",
        lambda s: ["--gt", str(s.gt), "--pred", str(s.path("none"))],
        r"Prediction folder not found: .*none",
    ),
    Row(
        "prediction-folder-is-a-file",
        lambda s: ["--gt", str(s.gt), "--pred", str(s.prediction)],
        r"--pred .*a.nii.gz is a file; give the folder",
    ),
    Row(
        "ground-truth-folder-missing",
        lambda s: ["--gt", str(s.path("none")), "--pred", str(s.pred)],
        r"Folder not found: .*none",
    ),
    Row(
        "ground-truth-folder-is-a-file",
        lambda s: ["--gt", str(s.truth), "--pred", str(s.pred)],
        r".*a_seg.nii.gz is a file; give the folder",
    ),
    Row(
        "ground-truth-without-segmentations",
        lambda s: (s.truth.rename(s.truth.with_name("a_flair.nii.gz")), s.folders())[1],
        r"No case under .* has a segmentation",
    ),
    Row(
        "convention-unknown",
        lambda s: s.folders("--convention", "dice-only"),
        r"argument --convention: invalid choice: 'dice-only'",
    ),
    Row("labels-unknown", lambda s: s.folders("--labels", "brats1999"), r"argument --labels: invalid choice"),
]


@pytest.mark.parametrize("row", [row.param() for row in ROWS])
def test_evaluate_refuses_with_one_line_and_leaves_everything_as_it_was(row, scoring, capsys, monkeypatch):
    check_row(row, "evaluate", scoring, scoring.folder, capsys, monkeypatch)


def test_the_table_holds_distinct_rows():
    check_table(ROWS, 25)


def test_a_read_only_report_folder_is_refused_before_scoring(scoring, capsys):
    folder = scoring.path("reports")
    folder.mkdir()
    with read_only(folder):
        status, first, out, _ = run_command(capsys, "evaluate", scoring.folders("--json", folder / "r.json"))
    assert status == 2 and "read-only file system" in first, first
    assert "Dice" not in out  # refused before scoring, not after


def test_reports_replace_their_own_earlier_versions_and_a_users_file_only_with_overwrite(scoring, capsys):
    reports = ["--json", scoring.path("r.json"), "--csv", scoring.path("r.csv")]
    assert run_command(capsys, "evaluate", scoring.folders(*reports))[0] == 0
    assert run_command(capsys, "evaluate", scoring.folders(*reports))[0] == 0
    user_file(scoring, "r.json")
    assert run_command(capsys, "evaluate", scoring.folders(*reports))[0] == 2
    assert run_command(capsys, "evaluate", scoring.folders(*reports, "--overwrite"))[0] == 0
    assert json.loads(scoring.path("r.json").read_text())["written_by"] == "mstkd evaluate"
