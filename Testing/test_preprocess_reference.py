"""The reference sequence: T1ce, else FLAIR, else T2, else T1; overridable by any alias."""

from __future__ import annotations

import pytest

from mstkd.conventions import SequenceMap, sequence_map
from mstkd.errors import MSTKDError
from mstkd.preprocess import choose_reference


@pytest.mark.parametrize(
    "available, expected",
    [
        (["flair", "t1", "t1ce", "t2"], "t1ce"),
        (["t1", "t2", "flair"], "flair"),
        (["t1", "t2"], "t2"),
        (["t1"], "t1"),
        (["T1Gd", "t2f"], "t1ce"),
        (["t1n", "t2w"], "t2"),
    ],
)
def test_the_preferred_reference_is_chosen(available, expected):
    assert choose_reference(available) == expected


def test_an_override_wins_and_accepts_aliases():
    assert choose_reference(["flair", "t1ce", "t2"], "t2") == "t2"
    assert choose_reference(["flair", "t1ce", "t2"], "T2-FLAIR") == "flair"
    assert choose_reference(["t1c", "t1n"], "T1w") == "t1"


def test_an_override_that_is_not_an_input_is_refused():
    with pytest.raises(MSTKDError, match=r"'t2' \(t2\) is not among the inputs \(flair, t1ce\)"):
        choose_reference(["flair", "t1ce"], "t2")
    with pytest.raises(MSTKDError, match="not a sequence name"):
        choose_reference(["flair"], "dwi")
    with pytest.raises(MSTKDError, match="at least one"):
        choose_reference([])


def test_inputs_are_keyed_by_canonical_name_once_each_in_canonical_order():
    inputs = sequence_map({"T1Gd": 1, "t2f": 2, "t1n": None})
    assert list(inputs.items()) == [("flair", 2), ("t1ce", 1)]
    assert inputs.subset.sequences == ("flair", "t1ce") and sequence_map(inputs) is inputs
    with pytest.raises(MSTKDError, match="'t1c' and 'T1Gd' both name the t1ce sequence"):
        sequence_map({"t1c": 1, "T1Gd": 2})
    with pytest.raises(MSTKDError, match="No sequence was given"):
        choose_reference(sequence_map({"flair": None}))
    with pytest.raises(ValueError, match="canonical"):
        SequenceMap({"T1Gd": 1})  # aliases are for sequence_map, which checks a user's input
