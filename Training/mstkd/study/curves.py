"""A run's curves as its trainer wrote them to TensorBoard: values per step, and the time per step."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

# The validation Dice the trainer picks its best model by, and the total training loss.
VALIDATION_DICE = "val_dice/mean"
TRAINING_LOSS = "loss/total"


@dataclass(frozen=True)
class Curve:
    """One scalar of a run: steps, values and the wall-clock time each was written at."""

    steps: Tuple[int, ...] = ()
    values: Tuple[float, ...] = ()
    times: Tuple[float, ...] = ()

    def seconds_per_step(self) -> Optional[float]:
        """Median wall-clock seconds per step between consecutive points (a resume's gap is one outlier)."""
        rates = [
            (t1 - t0) / (s1 - s0)
            for (s0, t0), (s1, t1) in zip(zip(self.steps, self.times), zip(self.steps[1:], self.times[1:]))
            if t1 > t0
        ]
        return float(np.median(rates)) if rates else None


def read_curve(folder: Path, tag: str) -> Curve:
    """One TensorBoard scalar of a run; a step logged again after a resume keeps its last value."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if not folder.is_dir():
        return Curve()
    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    accumulator.Reload()
    if tag not in accumulator.Tags()["scalars"]:
        return Curve()
    by_step = {event.step: (event.value, event.wall_time) for event in accumulator.Scalars(tag)}
    steps = tuple(sorted(by_step))
    return Curve(steps, tuple(by_step[s][0] for s in steps), tuple(by_step[s][1] for s in steps))
