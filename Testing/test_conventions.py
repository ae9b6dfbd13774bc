"""The one place for names: sequences, aliases, subsets, label conventions, regions."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from mstkd.conventions import (
    SEQUENCES,
    SUBSETS,
    check_labels,
    convert_labels,
    guess_sequence,
    label_convention,
    parse_subset,
    parse_subsets,
    region_masks,
    sequence_from_name,
)
from mstkd.errors import MSTKDError


@pytest.mark.parametrize(
    ("alias", "sequence"),
    [
        ("FLAIR", "flair"),
        ("t2f", "flair"),
        ("T2-FLAIR", "flair"),
        ("t2_flair", "flair"),
        ("T1", "t1"),
        ("t1n", "t1"),
        ("T1w", "t1"),
        ("t1_native", "t1"),
        ("T1 pre", "t1"),
        ("t1ce", "t1ce"),
        ("T1Gd", "t1ce"),
        ("t1c", "t1ce"),
        ("T1-post", "t1ce"),
        ("T1+C", "t1ce"),
        ("t1_gd", "t1ce"),
        ("T2", "t2"),
        ("t2w", "t2"),
        ("T2W", "t2"),
    ],
)
def test_every_documented_alias_maps_case_insensitively(alias, sequence):
    assert sequence_from_name(alias) == sequence
    assert sequence_from_name(alias.upper()) == sequence


def test_unknown_sequence_name_says_what_is_accepted():
    with pytest.raises(MSTKDError, match="flair, t1, t1ce, t2"):
        sequence_from_name("dwi")


@pytest.mark.parametrize(
    ("description", "sequence"),
    [
        ("AX T2 FLAIR", "flair"),
        ("Sag 3D FLAIR", "flair"),
        ("AX T1 POST CONTRAST", "t1ce"),
        ("T1 MPRAGE +C", "t1ce"),
        ("Ax T1 pre", "t1"),
        ("AX T2 FSE", "t2"),
        ("t1_mprage_sag", "t1"),
        ("BraTS2021_00001_t1ce", "t1ce"),
        ("DWI b1000", None),
        ("T1 and T2 overview", None),
    ],
)
def test_series_descriptions_are_recognised(description, sequence):
    assert guess_sequence(description) == sequence


def test_fifteen_subsets_in_the_papers_column_order():
    names = [s.name for s in SUBSETS]
    assert names == [
        "T2",
        "T1Gd",
        "T1",
        "FLAIR",
        "T1Gd+T2",
        "T1+T1Gd",
        "FLAIR+T1",
        "T1+T2",
        "FLAIR+T2",
        "FLAIR+T1Gd",
        "FLAIR+T1+T1Gd",
        "FLAIR+T1+T2",
        "FLAIR+T1Gd+T2",
        "T1+T1Gd+T2",
        "all",
    ]
    assert len(set(SUBSETS)) == 15
    assert all(s.sequences == tuple(sorted(s.sequences, key=SEQUENCES.index)) for s in SUBSETS)
    assert parse_subset("t2,T1Gd").absent == ("flair", "t1")


def test_only_the_conventions_put_sequences_in_canonical_order():
    """Code takes a Subset or a SequenceMap instead of filtering SEQUENCES by hand."""
    root = Path(__file__).resolve().parents[1]
    by_hand = re.compile(r"for \w+ in SEQUENCES if")
    found = [
        f"{path.relative_to(root)}:{number}"
        for folder in ("Training/mstkd", "MSTKDSegment", "Testing")
        for path in sorted((root / folder).rglob("*.py"))
        if path.name != "conventions.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if by_hand.search(line)
    ]
    assert not found, found


def test_user_subset_strings():
    assert parse_subset("flair,t2").sequences == ("flair", "t2")
    assert parse_subset("T2+FLAIR").sequences == ("flair", "t2")
    assert parse_subset("T1Gd").mask == (False, False, True, False)
    assert parse_subset("all") == SUBSETS[-1]
    assert parse_subsets("all15") == SUBSETS
    assert [s.key for s in parse_subsets("flair;t1,t1ce")] == ["flair", "t1,t1ce"]
    with pytest.raises(MSTKDError):
        parse_subset(",")


def test_label_conventions_convert_both_ways():
    brats2021 = np.array([0, 1, 2, 4])
    brats2023 = convert_labels(brats2021, "brats2021", "brats2023")
    assert brats2023.tolist() == [0, 1, 2, 3]
    assert convert_labels(brats2023, "brats2023", "brats2021").tolist() == [0, 1, 2, 4]
    # The 2024 resection cavity has no counterpart in the older conventions.
    assert convert_labels(np.array([3, 4]), "brats2024", "brats2021").tolist() == [4, 0]


def test_labels_outside_the_convention_are_refused():
    with pytest.raises(MSTKDError, match="brats2023"):
        check_labels(np.array([0, 1, 2, 4]), label_convention("brats2023"))
    with pytest.raises(MSTKDError, match="Unknown label convention"):
        label_convention("brats1999")


def test_regions_and_the_resection_cavity():
    labels = np.array([0, 1, 2, 3, 4])
    masks = region_masks(labels, label_convention("brats2024"))
    assert masks["WT"].tolist() == [False, True, True, True, False]
    assert masks["TC"].tolist() == [False, True, False, True, False]
    assert masks["ET"].tolist() == [False, False, False, True, False]
