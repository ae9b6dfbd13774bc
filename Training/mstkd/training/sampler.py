"""An endless, sharded, resumable stream of (epoch, case index) pairs.

Each epoch's order comes from (seed, epoch) alone and each rank takes every world-size-th
case, so a run resumed at step k sees exactly the samples a run straight through would.
"""

from __future__ import annotations

from typing import Iterator, Tuple

import numpy as np
from torch.utils.data import Sampler


class EpochStream(Sampler):
    """Yields (epoch, index) for one rank, forever, starting after `skip` items."""

    def __init__(self, size: int, seed: int, rank: int = 0, world_size: int = 1, skip: int = 0) -> None:
        if size < 1:
            raise ValueError("EpochStream needs at least one case")
        self.size, self.seed, self.rank, self.world_size, self.skip = size, seed, rank, world_size, skip

    @property
    def per_rank(self) -> int:
        """Items each rank draws per epoch (the order is padded so that every rank gets as many)."""
        return -(-self.size // self.world_size)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """This rank's case indices for one epoch."""
        order = np.random.default_rng([self.seed, epoch]).permutation(self.size)
        padded = np.resize(order, self.per_rank * self.world_size)
        return padded[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        epoch, offset = divmod(self.skip, self.per_rank)
        while True:
            for index in self.epoch_order(epoch)[offset:]:
                yield epoch, int(index)
            epoch, offset = epoch + 1, 0
