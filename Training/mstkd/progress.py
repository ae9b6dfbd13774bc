"""Progress bars for long work, written to stderr so that stdout stays machine-readable."""

from __future__ import annotations

import sys
from typing import Iterable, Optional, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], description: str, total: Optional[int] = None) -> Iterable[T]:
    """Wrap an iterable in a progress bar with rate and time remaining."""
    return tqdm(items, desc=description, total=total, file=sys.stderr, dynamic_ncols=True, leave=False)
