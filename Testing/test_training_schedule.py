"""Run length in steps or epochs, poly decay per step or per epoch, and gradient clamping."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mstkd.errors import MSTKDError
from mstkd.experiment.sections import TrainConfig
from mstkd.training.schedule import Schedule, training_schedule
from mstkd.training.steps import clamp_gradients
from mstkd.typed_config import from_mapping


def test_a_run_in_epochs_lasts_its_epochs_of_each_ranks_share_of_the_cases():
    train = TrainConfig(steps=None, epochs=3, batch_size=2)
    assert training_schedule(train, train_cases=10, world_size=1).total_steps == 15
    assert training_schedule(train, train_cases=10, world_size=2).total_steps == 9  # 5 cases per rank
    assert training_schedule(TrainConfig(steps=7), train_cases=10).total_steps == 7


def test_per_epoch_decay_is_constant_within_an_epoch_and_falls_as_the_references_poly():
    schedule = Schedule(total_steps=12, steps_per_epoch=4, per_epoch=True, power=0.9)
    factors = [schedule.lr_factor(step) for step in range(12)]
    assert factors[:4] == [1.0] * 4
    assert factors[4:8] == [pytest.approx((1 - 1 / 3) ** 0.9)] * 4
    assert factors[8:] == [pytest.approx((1 - 2 / 3) ** 0.9)] * 4
    per_step = Schedule(total_steps=12, steps_per_epoch=4, power=0.9)
    assert per_step.lr_factor(6) == pytest.approx(0.5**0.9)
    assert per_step.epoch(6) == 1.5


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"epochs": 100}, "train.steps or as train.epochs"),
        ({"steps": None}, "train.steps or as train.epochs"),
        ({"steps": None, "epochs": 0}, "at least 1"),
        ({"lr_schedule": "cosine"}, "step, epoch"),
        ({"gradient_clamp": 0}, "positive or null"),
    ],
)
def test_bad_schedules_are_refused(data, message):
    with pytest.raises(MSTKDError, match=message):
        from_mapping(TrainConfig, data, "train")


def test_clamping_bounds_every_gradient_element_and_zeroes_nan():
    layer = nn.Linear(3, 2)
    layer.weight.grad = torch.tensor([[5.0, -7.0, 0.5], [float("nan"), 0.1, -0.2]])
    layer.bias.grad = torch.tensor([float("inf"), -2.0])
    clamp_gradients(layer.parameters(), 1.0)
    assert torch.equal(layer.weight.grad, torch.tensor([[1.0, -1.0, 0.5], [0.0, 0.1, -0.2]]))
    assert torch.equal(layer.bias.grad, torch.tensor([1.0, -1.0]))
