"""The reference sequence: T1ce, else FLAIR, else T2, else T1; overridable by any alias."""

from __future__ import annotations

import pytest

from mstkd.errors import MSTKDError
from mstkd.preprocess import choose_reference
from mstkd.preprocess.reference import canonical_inputs


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


def test_inputs_are_keyed_by_canonical_name_once_each():
    assert canonical_inputs({"T1Gd": 1, "t2f": 2, "t1n": None}) == {"t1ce": 1, "flair": 2}
    with pytest.raises(MSTKDError, match="'t1c' and 'T1Gd' both name the t1ce sequence"):
        canonical_inputs({"t1c": 1, "T1Gd": 2})
    with pytest.raises(MSTKDError, match="No sequence was given"):
        canonical_inputs({"flair": None})
