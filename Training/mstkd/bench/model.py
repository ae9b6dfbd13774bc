"""`mstkd bench model`: one full training step and one student inference pass, fp32 and bf16."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Dict, List

import torch

from mstkd.bench.measure import Measurement, measure
from mstkd.conventions import SEQUENCES, label_convention
from mstkd.devices import autocast, supports_bf16
from mstkd.experiment import ExperimentConfig, build_inference_network, build_networks
from mstkd.training.data import LABEL, STUDENT, TEACHER
from mstkd.training.schedule import Schedule
from mstkd.training.steps import TrainingStep, trainable_module


@dataclass(frozen=True)
class BenchRow:
    """One measured configuration."""

    task: str  # "training step" or "inference"
    precision: str  # "fp32" or "bf16"
    measurement: Measurement


def synthetic_batch(experiment: ExperimentConfig, batch_size: int, seed: int = 0) -> Dict[str, torch.Tensor]:
    """A random batch of the experiment's patch size, with every label value present."""
    generator = torch.Generator().manual_seed(seed)
    shape = (batch_size, len(SEQUENCES), *experiment.patch)
    values = torch.tensor(sorted(label_convention(experiment.data.labels).value_set()), dtype=torch.uint8)
    labels = values[torch.randint(len(values), (batch_size, 1, *experiment.patch), generator=generator)]
    image = torch.randn(shape, generator=generator)
    return {
        STUDENT: image * torch.tensor([1.0, 0.0, 1.0, 0.0]).view(1, 4, 1, 1, 1),
        TEACHER: image,
        LABEL: labels,
    }


def bench_model(experiment: ExperimentConfig, device: torch.device, repeats: int) -> List[BenchRow]:
    """Training step and inference, in fp32 and (where supported) bf16 autocast."""
    precisions = ["fp32"] + (["bf16"] if supports_bf16(device) else [])
    rows = []
    for precision in precisions:
        bf16 = precision == "bf16"
        rows.append(BenchRow("training step", precision, _training_step(experiment, device, bf16, repeats)))
        _release(device)
        rows.append(BenchRow("inference", precision, _inference(experiment, device, bf16, repeats)))
        _release(device)
    return rows


def _training_step(
    experiment: ExperimentConfig, device: torch.device, bf16: bool, repeats: int
) -> Measurement:
    torch.manual_seed(0)
    networks = build_networks(experiment, device)
    train = dataclasses.replace(experiment.train, bf16=bf16)
    # The learning rate must not decay to 0 within the measured steps.
    schedule = Schedule(total_steps=repeats + 2, steps_per_epoch=1)
    labels = label_convention(experiment.data.labels)
    step = TrainingStep(
        experiment, train, networks, trainable_module(experiment, networks), labels, device, schedule
    )
    batch = synthetic_batch(experiment, train.batch_size)
    return measure(lambda: step(batch, epoch=0.0), device, repeats)


def _inference(experiment: ExperimentConfig, device: torch.device, bf16: bool, repeats: int) -> Measurement:
    torch.manual_seed(0)
    network = build_inference_network(experiment, device).eval()
    image = synthetic_batch(experiment, 1)[STUDENT].to(device)

    @torch.inference_mode()
    def run() -> None:
        with autocast(device, bf16):
            network(image)

    return measure(run, device, repeats)


def _release(device: torch.device) -> None:
    """Hand cached GPU memory back, so the next measurement's peak is its own."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
