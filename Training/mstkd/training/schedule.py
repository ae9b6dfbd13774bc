"""How long a run is (in steps or epochs) and how its learning rate decays (per step or per epoch)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from mstkd.experiment.sections import EPOCH_SCHEDULE, TrainConfig


@dataclass(frozen=True)
class Schedule:
    """A run's length in optimiser steps, its steps per epoch, and its poly learning-rate decay."""

    total_steps: int
    steps_per_epoch: int
    per_epoch: bool = False
    power: float = 0.9

    @property
    def epochs(self) -> int:
        """The run's length in (whole, possibly last-partial) epochs."""
        return math.ceil(self.total_steps / self.steps_per_epoch)

    def epoch(self, step: int) -> float:
        """The (fractional) epoch reached after `step` steps: what the DMLD ramp-ups count."""
        return step / self.steps_per_epoch

    def lr_factor(self, step: int) -> float:
        """Poly decay (1 - t/T)^power of the base rate, t and T in steps or in whole epochs.

        Per epoch, as the MST-KDNet and MAG-MS references do, the rate is constant within an
        epoch: epoch e of E runs at (1 - e/E)^power.
        """
        whole_epochs = (step // self.steps_per_epoch) / self.epochs
        progress = whole_epochs if self.per_epoch else step / self.total_steps
        return max(0.0, 1.0 - progress) ** self.power


def steps_per_epoch(train_cases: int, world_size: int, batch_size: int) -> int:
    """Optimiser steps per epoch when each of `world_size` ranks takes its share of the cases."""
    per_rank = math.ceil(train_cases / world_size)
    return math.ceil(per_rank / batch_size)


def training_schedule(train: TrainConfig, train_cases: int, world_size: int = 1) -> Schedule:
    """The schedule `train` asks for on a training set of `train_cases` cases."""
    per_epoch_steps = steps_per_epoch(train_cases, world_size, train.batch_size)
    total = train.steps if train.steps is not None else train.epochs * per_epoch_steps
    return Schedule(total, per_epoch_steps, train.lr_schedule == EPOCH_SCHEDULE, train.poly_power)
