"""Train/validation/test splits: split files (one case id per line) and seeded random splits."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np

from mstkd.cases import name_a_few
from mstkd.errors import MSTKDError
from mstkd.files import write_text
from mstkd.imageio import PathLike

PARTS: Tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """Disjoint case ids for training, validation and testing."""

    train: Tuple[str, ...]
    val: Tuple[str, ...]
    test: Tuple[str, ...]


def read_split(path: PathLike, known_ids: Optional[Iterable[str]] = None) -> Tuple[str, ...]:
    """Read case ids, one per line (blank lines and `#` comments ignored), checked against `known_ids`."""
    path = Path(path)
    if not path.is_file():
        raise MSTKDError(f"Split file not found: {path}. Check the path.")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise MSTKDError(f"Could not read the split file {path}: {error}.") from None
    ids = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    ids = [i for i in ids if i]
    repeated = sorted(i for i, n in Counter(ids).items() if n > 1)
    if repeated:
        raise MSTKDError(
            f"The split file {path} lists {name_a_few(repeated)} more than once; list each case once."
        )
    if known_ids is not None:
        known = set(known_ids)
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise MSTKDError(
                f"The split file {path} names {len(unknown)} case(s) not in the data set: "
                f"{name_a_few(unknown)}. Check that the split belongs to this data set and that its "
                f"ids match the case ids found (e.g. {name_a_few(sorted(known), 3)})."
            )
    return tuple(ids)


def write_split(path: PathLike, case_ids: Iterable[str], comment: Optional[str] = None) -> Path:
    """Write case ids one per line, after an optional `#` comment; returns the path."""
    path = Path(path)
    lines = [f"# {line}" for line in comment.splitlines()] if comment else []
    lines += list(case_ids)
    return write_text(path, "".join(line + "\n" for line in lines))


def random_split(
    case_ids: Iterable[str],
    fractions: Optional[Sequence[float]] = None,
    counts: Optional[Sequence[int]] = None,
    seed: int = 0,
) -> Split:
    """A seeded random train/val/test split by fractions (summing to 1) or by counts (at most all cases).

    The same ids and seed give the same split whatever the order of `case_ids`.
    """
    ids = sorted(set(case_ids))
    if (fractions is None) == (counts is None):
        raise MSTKDError("Give the split sizes either as fractions or as counts (train, val, test).")
    sizes = (
        _sizes_from_fractions(fractions, len(ids))
        if fractions is not None
        else _checked_counts(counts, len(ids))
    )
    order = np.random.default_rng(seed).permutation(len(ids))
    shuffled = [ids[i] for i in order]
    bounds = np.cumsum([0, *sizes])
    parts = (tuple(sorted(shuffled[bounds[k] : bounds[k + 1]])) for k in range(len(PARTS)))
    return Split(*parts)


def _sizes_from_fractions(fractions: Sequence[float], n: int) -> List[int]:
    if len(fractions) != len(PARTS) or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise MSTKDError(
            f"Split fractions {list(fractions)} must be three non-negative numbers (train, val, test) "
            f"summing to 1, e.g. 0.7, 0.1, 0.2."
        )
    # Largest remainder, so that the sizes add up to exactly n.
    exact = [f * n for f in fractions]
    sizes = [int(np.floor(x)) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda k: (sizes[k] - exact[k], k))
    for k in by_remainder[: n - sum(sizes)]:
        sizes[k] += 1
    return sizes


def _checked_counts(counts: Sequence[int], n: int) -> List[int]:
    if len(counts) != len(PARTS) or any(int(c) != c or c < 0 for c in counts):
        raise MSTKDError(
            f"Split counts {list(counts)} must be three non-negative integers (train, val, test), "
            f"e.g. 199, 29, 57."
        )
    if sum(counts) > n:
        raise MSTKDError(
            f"Split counts {list(counts)} add up to {sum(counts)}, but there are only {n} cases."
        )
    return [int(c) for c in counts]
