"""Which sequence is the reference: the grid the labels land on and the others are registered to."""

from __future__ import annotations

from typing import Dict, Iterable, Mapping, Optional, Tuple, TypeVar

from mstkd.conventions import SEQUENCES, sequence_from_name
from mstkd.errors import MSTKDError

# T1ce is the sharpest, thinnest-slice sequence of a tumour exam and the one radiologists outline
# on; FLAIR and T2 come next because they show the whole tumour; T1 last.
REFERENCE_PREFERENCE: Tuple[str, ...] = ("t1ce", "flair", "t2", "t1")

Item = TypeVar("Item")


def canonical_inputs(images: Mapping[str, Optional[Item]]) -> Dict[str, Item]:
    """The given inputs keyed by canonical sequence name (aliases accepted; None means absent)."""
    canonical: Dict[str, Item] = {}
    given: Dict[str, str] = {}
    for name, item in images.items():
        if item is None:
            continue
        sequence = sequence_from_name(name)
        if sequence in canonical:
            raise MSTKDError(
                f"'{given[sequence]}' and '{name}' both name the {sequence} sequence; give each "
                "sequence once."
            )
        canonical[sequence] = item
        given[sequence] = name
    if not canonical:
        raise MSTKDError(f"No sequence was given; give at least one of {', '.join(SEQUENCES)}.")
    return canonical


def choose_reference(available: Iterable[str], override: Optional[str] = None) -> str:
    """The reference sequence: `override` if given (an alias works), else T1ce, FLAIR, T2, T1."""
    present = [sequence_from_name(name) for name in available]
    if not present:
        raise MSTKDError(f"No sequence was given; give at least one of {', '.join(SEQUENCES)}.")
    if override is not None:
        chosen = sequence_from_name(override)
        if chosen not in present:
            raise MSTKDError(
                f"The reference '{override}' ({chosen}) is not among the inputs "
                f"({', '.join(s for s in SEQUENCES if s in present)}); choose one of those as the "
                "reference, or add that sequence."
            )
        return chosen
    return next(sequence for sequence in REFERENCE_PREFERENCE if sequence in present)
