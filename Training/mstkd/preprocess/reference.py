"""Which sequence is the reference: the grid the labels land on and the others are registered to."""

from __future__ import annotations

from typing import Iterable, Optional, Tuple

from mstkd.conventions import make_subset, sequence_from_name
from mstkd.errors import MSTKDError

# T1ce is the sharpest, thinnest-slice sequence of a tumour exam and the one radiologists outline
# on; FLAIR and T2 come next because they show the whole tumour; T1 last.
REFERENCE_PREFERENCE: Tuple[str, ...] = ("t1ce", "flair", "t2", "t1")


def choose_reference(available: Iterable[str], override: Optional[str] = None) -> str:
    """The reference sequence: `override` if given (an alias works), else T1ce, FLAIR, T2, T1."""
    present = make_subset(available)
    if override is not None:
        chosen = sequence_from_name(override)
        if chosen not in present:
            raise MSTKDError(
                f"The reference '{override}' ({chosen}) is not among the inputs "
                f"({', '.join(present.sequences)}); choose one of those as the reference, or add that "
                "sequence."
            )
        return chosen
    return next(sequence for sequence in REFERENCE_PREFERENCE if sequence in present)
