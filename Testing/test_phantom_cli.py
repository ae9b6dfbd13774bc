"""`mstkd phantom`: layouts on disk, byte-for-byte determinism, native grids, previews, bad arguments."""

from __future__ import annotations

import filecmp
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from mstkd.cases import discover_cases
from mstkd.cli.main import USER_ERROR_STATUS, main
from mstkd.conventions import label_convention

SMALL = ["--shape", "64,64,48"]


def phantom(out: Path, *options: str) -> int:
    return main(["phantom", str(out), *SMALL, *options])


def files_under(folder: Path):
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("layout", "cases", "suffixes", "separator"),
    [
        ("brats2021", ["BraTS2021_00000", "BraTS2021_00001"], ("flair", "seg", "t1", "t1ce", "t2"), "_"),
        (
            "brats2023",
            ["BraTS-GLI-00000-000", "BraTS-GLI-00001-000"],
            ("seg", "t1c", "t1n", "t2f", "t2w"),
            "-",
        ),
    ],
)
def test_writes_the_layout_of_each_release(tmp_path, layout, cases, suffixes, separator):
    assert phantom(tmp_path, "--cases", "2", "--seed", "3", "--layout", layout) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == cases
    case = cases[1]
    assert sorted(p.name for p in (tmp_path / case).iterdir()) == [
        f"{case}{separator}{s}.nii.gz" for s in suffixes
    ]
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / case / f"{case}{separator}seg.nii.gz")))
    assert set(np.unique(labels)) <= label_convention(layout).value_set()
    assert labels.any()
    found = discover_cases(tmp_path)
    assert [c.case_id for c in found.cases] == cases
    assert all(not c.missing and c.segmentation is not None for c in found.cases)


def test_same_seed_same_bytes_and_cases_independent_of_the_count(tmp_path):
    assert phantom(tmp_path / "a", "--cases", "2", "--seed", "8") == 0
    assert phantom(tmp_path / "b", "--cases", "2", "--seed", "8") == 0
    assert phantom(tmp_path / "c", "--cases", "1", "--seed", "8") == 0
    assert phantom(tmp_path / "d", "--cases", "1", "--seed", "9") == 0
    a_files = files_under(tmp_path / "a")
    assert a_files == files_under(tmp_path / "b")
    _, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", a_files, shallow=False)
    assert not mismatch and not errors
    c_files = files_under(tmp_path / "c")
    _, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "c", c_files, shallow=False)
    assert not mismatch and not errors
    _, mismatch, _ = filecmp.cmpfiles(tmp_path / "c", tmp_path / "d", c_files, shallow=False)
    assert len(mismatch) == len(c_files)


def test_native_files_sit_in_a_subfolder_with_the_truth_on_the_t1ce_grid(tmp_path):
    assert phantom(tmp_path, "--seed", "2", "--native") == 0
    case = tmp_path / "BraTS2021_00000"
    assert sorted(p.name for p in case.iterdir() if p.is_file()) == [
        f"BraTS2021_00000_{s}.nii.gz" for s in ("flair", "seg", "t1", "t1ce", "t2")
    ]
    native = {
        p.name.split("_")[-1].split(".")[0]: sitk.ReadImage(str(p)) for p in (case / "native").iterdir()
    }
    assert sorted(native) == ["flair", "seg", "t1", "t1ce", "t2"]
    seg, t1ce = native["seg"], native["t1ce"]
    assert seg.GetSize() == t1ce.GetSize() and seg.GetSpacing() == t1ce.GetSpacing()
    assert seg.GetOrigin() == t1ce.GetOrigin() and seg.GetDirection() == t1ce.GetDirection()
    assert len({image.GetSize() for image in native.values()}) == 4


def test_preview_is_a_png_outside_the_case_folders(tmp_path):
    assert phantom(tmp_path, "--seed", "1", "--preview") == 0
    png = tmp_path / "previews" / "BraTS2021_00000.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not any(p.suffix == ".png" for p in (tmp_path / "BraTS2021_00000").iterdir())


@pytest.mark.parametrize(
    "options",
    [
        ["--cases", "0"],
        ["--cases", "-2"],
        ["--shape", "64,64"],
        ["--shape", "64x64xabc"],
        ["--shape", "8,8,8"],
        ["--seed", "-1"],
    ],
)
def test_bad_arguments_exit_with_the_user_error_status(tmp_path, capsys, options):
    assert main(["phantom", str(tmp_path / "out"), *options]) == USER_ERROR_STATUS
    assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_unknown_layout_is_refused_by_the_parser(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["phantom", str(tmp_path), "--layout", "brats1999"])
    assert exit_info.value.code == USER_ERROR_STATUS


def test_a_file_as_the_output_folder_is_refused(tmp_path):
    target = tmp_path / "taken"
    target.write_text("not a folder")
    assert phantom(target) == USER_ERROR_STATUS
