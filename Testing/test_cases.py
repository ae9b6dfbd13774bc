"""Case discovery in every BraTS/FeTS layout, in loose folders, and in broken ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from mstkd.cases import (
    DUPLICATE_CASE,
    DUPLICATE_FILE,
    MISSING_SEGMENTATION,
    MISSING_SEQUENCES,
    UNRECOGNISED_FILE,
    discover_cases,
    find_case_files,
    parse_file_name,
)
from mstkd.errors import MSTKDError

SUFFIXES_2021 = {"flair": "flair", "t1": "t1", "t1ce": "t1ce", "t2": "t2", "seg": "seg"}
SUFFIXES_2023 = {"flair": "t2f", "t1": "t1n", "t1ce": "t1c", "t2": "t2w", "seg": "seg"}


def write_tiny(path: Path) -> Path:
    """A real 4^3 image file (format from the extension)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 4, 4), np.uint8)), str(path))
    return path


def write_case(folder: Path, case_id: str, separator: str, suffixes: dict, qualifiers: dict = None):
    """Write one case's five files; returns {name: path}."""
    qualifiers = qualifiers or {}
    return {
        name: write_tiny(folder / f"{case_id}{separator}{qualifiers.get(name, '')}{suffix}.nii.gz")
        for name, suffix in suffixes.items()
    }


RELEASES = {
    "brats2018": [
        ("HGG/Brats18_2013_2_1", "Brats18_2013_2_1", "_", SUFFIXES_2021, {}),
        ("LGG/Brats18_TCIA10_103_1", "Brats18_TCIA10_103_1", "_", SUFFIXES_2021, {}),
    ],
    "brats2020": [
        ("BraTS20_Training_002", "BraTS20_Training_002", "_", SUFFIXES_2021, {}),
        ("BraTS20_Training_001", "BraTS20_Training_001", "_", SUFFIXES_2021, {}),
    ],
    "brats2021": [("BraTS2021_00000", "BraTS2021_00000", "_", SUFFIXES_2021, {})],
    "fets2022": [
        ("FeTS2022_00000", "FeTS2022_00000", "_", SUFFIXES_2021, {}),
        (
            "FeTS2022_00001",
            "FeTS2022_00001",
            "_",
            SUFFIXES_2021,
            {"flair": "brain_", "t1": "brain_", "t1ce": "brain_", "t2": "brain_", "seg": "final_"},
        ),
    ],
    "brats2023-gli": [
        ("BraTS-GLI-00002-000", "BraTS-GLI-00002-000", "-", SUFFIXES_2023, {}),
        ("BraTS-GLI-00000-001", "BraTS-GLI-00000-001", "-", SUFFIXES_2023, {}),
    ],
}


@pytest.mark.parametrize("release", sorted(RELEASES))
def test_every_release_layout_is_discovered_completely(tmp_path, release):
    expected = {}
    for folder, case_id, separator, suffixes, qualifiers in RELEASES[release]:
        expected[case_id] = write_case(tmp_path / folder, case_id, separator, suffixes, qualifiers)
    (tmp_path / "partitioning_1.csv").write_text("Subject_ID,Partition_ID\n")

    found = discover_cases(tmp_path)

    assert [c.case_id for c in found.cases] == sorted(expected)
    assert found.problems == ()
    for case in found.cases:
        files = expected[case.case_id]
        assert dict(case.sequences) == {s: files[s] for s in ("flair", "t1", "t1ce", "t2")}
        assert list(case.sequences) == ["flair", "t1", "t1ce", "t2"]
        assert case.segmentation == files["seg"]
        assert case.missing == ()


def test_loose_files_of_several_cases_in_one_folder_with_every_extension(tmp_path):
    a = {
        "flair": write_tiny(tmp_path / "caseA_flair.nii.gz"),
        "t1": write_tiny(tmp_path / "caseA_T1.nii"),
        "t1ce": write_tiny(tmp_path / "caseA_t1ce.nhdr"),
        "t2": write_tiny(tmp_path / "caseA_t2.nrrd"),
    }
    b_flair = write_tiny(tmp_path / "caseB-T2-FLAIR.nrrd")
    b_seg = write_tiny(tmp_path / "caseB_seg.nii.gz")

    found = discover_cases(tmp_path)

    assert [c.case_id for c in found.cases] == ["caseA", "caseB"]
    case_a, case_b = found.cases
    assert dict(case_a.sequences) == a
    assert case_a.segmentation is None
    assert dict(case_b.sequences) == {"flair": b_flair}
    assert case_b.segmentation == b_seg
    assert case_b.missing == ("t1", "t1ce", "t2")
    assert {p.case_id for p in found.problems_of(MISSING_SEGMENTATION)} == {"caseA"}
    assert [p.case_id for p in found.problems_of(MISSING_SEQUENCES)] == ["caseB"]
    assert found.case("caseB") is case_b
    with pytest.raises(MSTKDError, match="caseA, caseB"):
        found.case("caseC")


def test_a_mixed_and_broken_folder_is_reported_not_fatal(tmp_path):
    write_case(tmp_path / "good", "good", "_", SUFFIXES_2021)
    write_tiny(tmp_path / "partial" / "partial_flair.nii.gz")
    write_tiny(tmp_path / "partial" / "partial_t2.nii.gz")
    write_tiny(tmp_path / "dup" / "dup_t1.nii.gz")
    write_tiny(tmp_path / "dup" / "dup_t1.nrrd")
    write_tiny(tmp_path / "twice" / "a" / "twin_t1.nii.gz")
    write_tiny(tmp_path / "twice" / "b" / "twin_t1.nii.gz")
    write_tiny(tmp_path / "misc" / "scan_0001.nii.gz")
    (tmp_path / "misc" / "notes.txt").write_text("not an image")
    (tmp_path / "misc" / "broken_t1.nii.gz").write_bytes(b"not gzip at all")
    (tmp_path / "misc" / ".hidden_t1.nii.gz").write_bytes(b"")
    (tmp_path / "misc" / "dangling_t2.nii.gz").symlink_to(tmp_path / "nowhere.nii.gz")
    (tmp_path / "misc" / "folder_t1.nii.gz").mkdir()

    found = discover_cases(tmp_path)

    ids = [c.case_id for c in found.cases]
    assert ids == ["broken", "dup", "good", "partial", "twin"]
    assert found.case("partial").missing == ("t1", "t1ce")
    duplicate = found.problems_of(DUPLICATE_FILE)
    assert [(p.case_id, len(p.paths)) for p in duplicate] == [("dup", 2)]
    assert found.case("dup").sequences["t1"] == tmp_path / "dup" / "dup_t1.nii.gz"
    twins = found.problems_of(DUPLICATE_CASE)
    assert [p.case_id for p in twins] == ["twin"]
    assert found.case("twin").folder == tmp_path / "twice" / "a"
    assert [p.paths for p in found.problems_of(UNRECOGNISED_FILE)] == [
        (tmp_path / "misc" / "scan_0001.nii.gz",)
    ]
    assert "5 case(s)" in found.summary() and "unrecognised-file" in found.summary()


def test_missing_empty_and_unrecognised_folders_raise(tmp_path):
    with pytest.raises(MSTKDError, match="not found"):
        discover_cases(tmp_path / "absent")
    with pytest.raises(MSTKDError, match="holds no image files"):
        discover_cases(tmp_path)
    write_tiny(tmp_path / "scan_0001.nii.gz")
    with pytest.raises(MSTKDError, match="scan_0001.nii.gz"):
        discover_cases(tmp_path)
    with pytest.raises(MSTKDError, match="is a file"):
        discover_cases(tmp_path / "scan_0001.nii.gz")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Brats18_2013_2_1_flair.nii.gz", ("Brats18_2013_2_1", "flair")),
        ("FeTS2022_00000_brain_t1.nii.gz", ("FeTS2022_00000", "t1")),
        ("FeTS2022_00000_final_seg.nii.gz", ("FeTS2022_00000", "seg")),
        ("BraTS-GLI-00000-000-t1c.nii.gz", ("BraTS-GLI-00000-000", "t1ce")),
        ("BraTS-GLI-00000-000-t2f.nii.gz", ("BraTS-GLI-00000-000", "flair")),
        ("caseA_t2_flair.nrrd", ("caseA", "flair")),
        ("case.1_t1_native.nhdr", ("case.1", "t1")),
        ("caseA_T1+C.nii", ("caseA", "t1ce")),
        ("t2w.nii.gz", ("", "t2")),
        ("BraTS-GLI-00000-000.nii.gz", None),
        ("caseA_t1.txt", None),
    ],
)
def test_file_names_split_into_case_and_sequence(name, expected):
    assert parse_file_name(name) == expected


def test_find_case_files_in_a_single_case_folder(tmp_path):
    files = write_case(tmp_path, "BraTS-GLI-00001-000", "-", SUFFIXES_2023)
    write_tiny(tmp_path / "sub" / "other_t1.nii.gz")

    case = find_case_files(tmp_path)

    assert case.case_id == "BraTS-GLI-00001-000"
    assert case.sequences["t1ce"] == files["t1ce"]
    assert case.segmentation == files["seg"]


def test_find_case_files_names_by_folder_and_refuses_ambiguity(tmp_path):
    exam = tmp_path / "exam42"
    write_tiny(exam / "FLAIR.nii.gz")
    write_tiny(exam / "t1gd.nrrd")
    case = find_case_files(exam)
    assert case.case_id == "exam42"
    assert set(case.sequences) == {"flair", "t1ce"}

    loose = tmp_path / "loose"
    write_tiny(loose / "a_t1.nii.gz")
    write_tiny(loose / "b_t1.nii.gz")
    write_tiny(loose / "b_t1.nrrd")
    with pytest.raises(MSTKDError, match="several cases.*a, b"):
        find_case_files(loose)
    assert find_case_files(loose, "a").sequences["t1"] == loose / "a_t1.nii.gz"
    with pytest.raises(MSTKDError, match="2 files for t1"):
        find_case_files(loose, "b")
    with pytest.raises(MSTKDError, match="No case 'c'"):
        find_case_files(loose, "c")
    with pytest.raises(MSTKDError, match="names a sequence"):
        find_case_files(tmp_path)


def test_a_cases_native_acquisitions_are_not_mixed_into_it(tmp_path):
    from mstkd.phantom.generate import write_phantoms

    write_phantoms(tmp_path, cases=1, seed=2, shape=(64, 64, 48), native=True, show_progress=False)
    discovery = discover_cases(tmp_path)
    (case,) = discovery.cases
    assert not discovery.problems
    assert all("native" not in path.parts for path in case.sequences.values())
