"""`mstkd phantom` against bad requests and faults: one line, exit 2, no case written, no file replaced.

Each row runs the command into a folder that may already hold files (a user's, or an earlier
phantom's) and checks the exit status, the first line of the message, and that the folder is
byte for byte as before: a refused or failed request leaves no half-written case behind.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import SimpleITK as sitk
from faults import ENOSPC_WHEN_FLUSHED, Row, check_row, check_table, fail_when_flushed, read_only, run_command

from mstkd.files import sha256_of

SMALL = ("--shape", "48,48,32")
CASE = "BraTS2021_00000"


@dataclass
class Place:
    """The folder `phantom` writes into (out/), inside a folder the rows may also put files in."""

    folder: Path

    @property
    def out(self) -> Path:
        return self.folder / "out"

    def case_file(self, name: str, native: bool = False) -> Path:
        folder = self.out / CASE / ("native" if native else "")
        return folder / f"{CASE}_{name}.nii.gz"

    def users_file(self, path: Path) -> Path:
        """A file of the user's under a name a phantom would take."""
        path.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(sitk.Image([8, 8, 8], sitk.sitkInt16), str(path))
        return path

    def args(self, *more: str) -> list:
        return [str(self.out), *SMALL, *more]


@pytest.fixture
def place(tmp_path) -> Place:
    setting = Place(tmp_path / "place")
    setting.folder.mkdir()
    return setting


def non_utf8_folder(p: Place) -> list:
    return [os.fsdecode(os.fsencode(str(p.folder)) + b"/out\xff"), *SMALL]


ROWS = [
    Row(
        "no-cases",
        lambda p: p.args("--cases", "0"),
        r"Ask for at least one case \(--cases 1 or more\); got 0",
    ),
    Row("negative-cases", lambda p: p.args("--cases", "-3"), r"Ask for at least one case"),
    Row(
        "cases-not-a-number",
        lambda p: p.args("--cases", "many"),
        r"argument --cases: invalid int value: 'many'",
    ),
    Row("negative-seed", lambda p: p.args("--seed", "-1"), r"The seed must be a whole number >= 0; got -1"),
    Row(
        "shape-of-two-numbers",
        lambda p: [str(p.out), "--shape", "64,64"],
        r"--shape takes three whole numbers such as 240,240,155; got '64,64'",
    ),
    Row("shape-not-numbers", lambda p: [str(p.out), "--shape", "big"], r"--shape takes three whole numbers"),
    Row(
        "shape-too-small",
        lambda p: [str(p.out), "--shape", "4,4,4"],
        r"A phantom's shape is three sizes x,y,z between",
    ),
    Row(
        "shape-too-large",
        lambda p: [str(p.out), "--shape", "5000,5000,5000"],
        r"A phantom's shape is three sizes x,y,z between",
    ),
    Row(
        "layout-unknown",
        lambda p: p.args("--layout", "brats2099"),
        r"argument --layout: invalid choice: 'brats2099'",
    ),
    Row(
        "out-is-a-file",
        lambda p: (p.users_file(p.folder / "file.nii.gz"), [str(p.folder / "file.nii.gz"), *SMALL])[1],
        r".*file.nii.gz is a file; give a folder to write the cases into",
    ),
    Row(
        "out-inside-a-file",
        lambda p: (p.users_file(p.folder / "f.nii.gz"), [str(p.folder / "f.nii.gz" / "out"), *SMALL])[1],
        r".*f.nii.gz is a file, so the folder .* cannot be created",
    ),
    Row("out-name-not-utf8", non_utf8_folder, r"The path b'.*out\\xff' is not valid UTF-8 text"),
    Row(
        "a-users-file-under-a-case-name",
        lambda p: (p.users_file(p.case_file("t1")), p.args())[1],
        r".*BraTS2021_00000_t1.nii.gz exists and is not a phantom image written by mstkd; .* --overwrite",
    ),
    Row(
        "a-users-file-under-a-later-case-name",
        lambda p: (
            p.users_file(p.out / "BraTS2021_00002" / "BraTS2021_00002_seg.nii.gz"),
            p.args("--cases", "3"),
        )[1],
        r".*BraTS2021_00002_seg.nii.gz exists and is not a phantom image",
    ),
    Row(
        "a-users-file-under-a-native-name",
        lambda p: (p.users_file(p.case_file("t2", native=True)), p.args("--native"))[1],
        r".*native/BraTS2021_00000_t2.nii.gz exists and is not a phantom image",
    ),
    Row(
        "a-users-file-under-the-held-out-marker-name",
        lambda p: (
            (p.out / CASE).mkdir(parents=True),
            (p.out / CASE / "held_out.json").write_text('{"mine": true}'),
            p.args("--generator", "ood"),
        )[2],
        r".*held_out.json exists and is not a held-out marker written by mstkd",
    ),
    Row(
        "a-folder-under-a-case-file-name",
        lambda p: (p.case_file("flair").mkdir(parents=True), p.args())[1],
        r".*BraTS2021_00000_flair.nii.gz is a folder",
    ),
    Row(
        "disk-full-while-writing-a-case",
        lambda p: p.args("--cases", "2"),
        r"No space left on the disk of .*BraTS2021_00000_t1ce.nii.gz",
        fault=fail_when_flushed(errno.ENOSPC, "t1ce.nii.gz"),
    ),
    Row(
        "read-only-while-writing-a-case",
        lambda p: p.args(),
        r".*BraTS2021_00000_seg.nii.gz is on a read-only file system",
        fault=fail_when_flushed(errno.EROFS, "seg.nii.gz"),
    ),
    Row(
        "disk-full-at-the-first-file",
        lambda p: p.args(),
        r"No space left on the disk of .*BraTS2021_00000_flair.nii.gz",
        fault=ENOSPC_WHEN_FLUSHED,
    ),
]


@pytest.mark.parametrize("row", [row.param() for row in ROWS])
def test_phantom_refuses_with_one_line_and_replaces_nothing(row, place, capsys, monkeypatch):
    check_row(row, "phantom", place, place.folder, capsys, monkeypatch)


def test_the_table_holds_distinct_rows():
    check_table(ROWS, 15)


def test_a_read_only_folder_is_refused_before_any_case_is_generated(place, capsys, monkeypatch):
    import mstkd.phantom.generate

    monkeypatch.setattr(mstkd.phantom.generate, "generate_case", lambda *a: pytest.fail("generated"))
    place.out.mkdir()
    with read_only(place.out):
        status, first, _, _ = run_command(capsys, "phantom", place.args())
    assert status == 2 and "read-only file system" in first, first


def test_a_second_run_replaces_its_own_cases_and_a_users_file_only_with_overwrite(place, capsys):
    assert run_command(capsys, "phantom", place.args())[0] == 0
    first = sha256_of(place.case_file("flair"))
    assert run_command(capsys, "phantom", place.args("--seed", "1"))[0] == 0  # its own files: replaced
    assert sha256_of(place.case_file("flair")) != first
    mine = place.users_file(place.case_file("t2"))
    assert run_command(capsys, "phantom", place.args())[0] == 2
    assert sha256_of(mine) == sha256_of(place.case_file("t2"))
    assert run_command(capsys, "phantom", place.args("--overwrite"))[0] == 0
    assert sitk.ReadImage(str(place.case_file("t2"))).GetSize() == (48, 48, 32)
