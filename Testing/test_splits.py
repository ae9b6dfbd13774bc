"""Split files and seeded random splits."""

from __future__ import annotations

import pytest

from mstkd.errors import MSTKDError
from mstkd.splits import random_split, read_split, write_split

IDS = [f"BraTS2021_{i:05d}" for i in range(285)]


def test_split_file_round_trip_ignores_blank_lines_and_comments(tmp_path):
    path = write_split(tmp_path / "lists" / "test.txt", ["b", "a", "c"], comment="seed 3\nRFNet protocol")
    assert path.read_text().splitlines() == ["# seed 3", "# RFNet protocol", "b", "a", "c"]
    assert read_split(path) == ("b", "a", "c")

    path.write_text("\n# header\n  caseA  \n\ncaseB # from M2FTrans\n#caseC\n")
    assert read_split(path, known_ids=["caseA", "caseB", "caseD"]) == ("caseA", "caseB")


def test_unknown_ids_are_listed_a_few_at_a_time(tmp_path):
    path = write_split(tmp_path / "val.txt", [f"x{i}" for i in range(8)] + ["caseA"])
    with pytest.raises(MSTKDError, match=r"8 case\(s\) not in the data set: x0, x1, x2, x3, x4 and 3 more"):
        read_split(path, known_ids=["caseA"])


def test_bad_split_files_raise(tmp_path):
    with pytest.raises(MSTKDError, match="not found"):
        read_split(tmp_path / "absent.txt")
    path = write_split(tmp_path / "train.txt", ["a", "b", "a"])
    with pytest.raises(MSTKDError, match="lists a more than once"):
        read_split(path)


def test_random_split_is_seeded_and_independent_of_input_order():
    first = random_split(IDS, counts=(199, 29, 57), seed=1)
    assert first == random_split(list(reversed(IDS)) + IDS[:3], counts=(199, 29, 57), seed=1)
    assert first != random_split(IDS, counts=(199, 29, 57), seed=2)
    assert (len(first.train), len(first.val), len(first.test)) == (199, 29, 57)
    assert sorted(first.train + first.val + first.test) == IDS
    assert list(first.test) == sorted(first.test)


def test_fractions_round_to_sizes_that_add_up():
    split = random_split(IDS, fractions=(0.7, 0.1, 0.2), seed=0)
    assert (len(split.train), len(split.val), len(split.test)) == (200, 28, 57)
    split = random_split(IDS[:10], fractions=(0.8, 0.0, 0.2))
    assert (len(split.train), len(split.val), len(split.test)) == (8, 0, 2)


def test_counts_may_leave_cases_out_but_not_exceed_them():
    split = random_split(IDS[:20], counts=(5, 2, 3), seed=4)
    used = set(split.train) | set(split.val) | set(split.test)
    assert len(used) == 10 and used <= set(IDS[:20])
    with pytest.raises(MSTKDError, match="only 20 cases"):
        random_split(IDS[:20], counts=(15, 3, 3))


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ({"fractions": (0.7, 0.2)}, "three non-negative numbers"),
        ({"fractions": (0.7, 0.2, 0.2)}, "summing to 1"),
        ({"counts": (10, -1, 2)}, "non-negative integers"),
        ({"counts": (1.5, 1, 2)}, "non-negative integers"),
        ({}, "either as fractions or as counts"),
        ({"fractions": (0.8, 0.1, 0.1), "counts": (1, 1, 1)}, "either as fractions or as counts"),
    ],
)
def test_bad_split_sizes_raise(sizes, message):
    with pytest.raises(MSTKDError, match=message):
        random_split(IDS, **sizes)
