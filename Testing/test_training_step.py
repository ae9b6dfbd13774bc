"""One optimisation step of each method, for real: repeated on a fixed batch, the loss falls."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from mstkd.cases import discover_cases
from mstkd.conventions import label_convention
from mstkd.experiment import build_networks, load_experiment
from mstkd.training.data import TrainingDataset, collate
from mstkd.training.schedule import Schedule
from mstkd.training.steps import TrainingStep, trainable_module

CONFIGS = Path(__file__).resolve().parents[1] / "Training" / "configs"


@pytest.mark.parametrize(
    ("config", "overrides"),
    [
        ("tiny.yaml", ["patch=[32,32,64]"]),  # two tokens, so attention distillation is live
        ("tiny.yaml", ["method=baseline"]),
        ("magms.yaml", ["patch=[32,32,32]", "model.widths=[4,8,16,32]"]),
    ],
    ids=["mstkd", "baseline", "magms"],
)
def test_loss_falls_on_a_fixed_batch(config, overrides, phantom_root):
    experiment = load_experiment(
        CONFIGS / config, overrides + [f"data.root={phantom_root}", "train.steps=12", "train.epochs=null"]
    )
    train = dataclasses.replace(experiment.train, learning_rate=2e-3)
    torch.manual_seed(0)
    networks = build_networks(experiment)
    cases = discover_cases(phantom_root).cases[:2]
    dataset = TrainingDataset(
        cases, experiment.data, experiment.patch, with_teacher=experiment.method == "mstkd"
    )
    batch = collate([dataset[(0, 0)], dataset[(0, 1)]])
    step = TrainingStep(
        experiment,
        train,
        networks,
        trainable_module(experiment, networks),
        label_convention(experiment.data.labels),
        torch.device("cpu"),
        Schedule(total_steps=12, steps_per_epoch=1),
    )
    losses = [step(batch, epoch=0.0).total for _ in range(10)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert min(losses[-3:]) < losses[0] - 0.05, losses
    if experiment.method == "mstkd":
        terms = step(batch, epoch=0.0).terms
        assert terms["mstkd_attention"] > 0 and "discriminator" in terms
