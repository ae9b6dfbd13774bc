"""`mstkd bench batchnorm`: held-out Dice of a trained model under each choice of BatchNorm statistics.

The model's own seeded split (recomputed from its recorded data settings over the cases given)
supplies the training patches for recalibration and the held-out cases (validation and test)
that are scored, with the model's normalisation and label rule, as training validation does.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Dict, Iterator, Sequence

import torch
from torch import Tensor

from mstkd.conventions import Subset, label_convention
from mstkd.errors import MSTKDError
from mstkd.inference.model_file import TrainedModel
from mstkd.models.batchnorm import (
    PER_SAMPLE,
    RECALIBRATED,
    RUNNING,
    batchnorm_layers,
    per_sample,
    recalibrated,
)
from mstkd.training.data import STUDENT, TrainingDataset, collate
from mstkd.training.run import choose_split, select, usable_cases
from mstkd.training.validation import load_validation_cases, validate

# The epoch of the training stream the recalibration patches start at (past a short run's own).
RECALIBRATION_EPOCH = 1000


def bench_batchnorm(
    model: TrainedModel, data_root: Path, subsets: Sequence[Subset], patches: int, device: torch.device
) -> Dict[str, Dict[str, float]]:
    """Held-out Dice (WT, TC, ET, mean) with running, recalibrated and per-sample statistics."""
    if not batchnorm_layers(model.network):
        raise MSTKDError(f"{model.path} has no BatchNorm layers; there is nothing to measure.")
    data = dataclasses.replace(model.experiment.data, root=str(data_root), workers=0)
    experiment = dataclasses.replace(model.experiment, data=data)
    _, cases = usable_cases(data)
    split = choose_split(data, cases)
    held_out = load_validation_cases(select(cases, split.val + split.test), label_convention(data.labels))
    if not held_out or not split.train:
        raise MSTKDError(f"The model's split of {data_root} leaves no training or no held-out case.")
    dataset = TrainingDataset(select(cases, split.train), data, experiment.patch, with_teacher=False, seed=0)
    variants = {
        RUNNING: model.network,
        RECALIBRATED: recalibrated(model.network, _patches(dataset, patches, device)),
        PER_SAMPLE: per_sample(model.network),
    }
    return {
        name: validate(network, held_out, subsets, experiment, device) for name, network in variants.items()
    }


def _patches(dataset: TrainingDataset, count: int, device: torch.device) -> Iterator[Tensor]:
    """`count` student inputs drawn as in training (random subsets, crops and augmentation), batch 1."""
    for index in range(count):
        epoch, case = divmod(index, len(dataset))
        yield collate([dataset[(RECALIBRATION_EPOCH + epoch, case)]])[STUDENT].to(device)
