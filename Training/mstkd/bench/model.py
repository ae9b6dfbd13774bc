"""`mstkd bench model`: a full training step and a student inference pass, each beside a baseline.

Every figure comes with a ratio to a baseline measured in the same run, on the same machine
under the same load: the training step against the same step with the reference code's two
backward passes, channels-last inference against PyTorch's default layout, bf16 against fp32.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import torch

from mstkd.bench.measure import Measurement, measure
from mstkd.conventions import SEQUENCES, label_convention
from mstkd.devices import LAYOUTS, autocast, bf16_support
from mstkd.experiment import ExperimentConfig, build_inference_network, build_networks
from mstkd.losses.objective import ObjectiveResult
from mstkd.training.data import LABEL, STUDENT, TEACHER
from mstkd.training.schedule import Schedule
from mstkd.training.steps import TrainingStep, trainable_module

TRAINING_STEP = "training step"
TWO_BACKWARD_STEP = "training step, two backward passes"
INFERENCE = "inference"
# The objective term the reference code back-propagates on its own, after the rest.
SEPARATE_TERM = "gsme_adversarial"


@dataclass(frozen=True)
class BenchRow:
    """One measured configuration, and its time as a fraction of its baseline's."""

    task: str
    precision: str  # "fp32" or "bf16"
    layout: str  # a key of LAYOUTS
    measurement: Measurement
    baseline: Optional[str] = None  # the row it is compared with: "task, precision, layout"
    ratio: Optional[float] = None  # median time / the baseline's median time

    @property
    def name(self) -> str:
        """How other rows name this one as their baseline."""
        return f"{self.task}, {self.precision}, {self.layout}"


class TwoBackwardStep(TrainingStep):
    """Our training step with the reference code's two backward passes (train.py of MST-KDNet).

    The reference back-propagates the objective without the GSME adversarial term (keeping the
    graph), then the adversarial term alone, again through the student. Same gradients; the
    student's encoder is back-propagated twice.
    """

    def backward(self, result: ObjectiveResult) -> None:
        """Everything but the adversarial term, then the adversarial term."""
        separate = result.weighted.get(SEPARATE_TERM)
        if separate is None:
            return super().backward(result)
        rest = [value for name, value in result.weighted.items() if name != SEPARATE_TERM]
        sum(rest).backward(retain_graph=True)
        separate.backward()
        return None


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


def bench_model(
    experiment: ExperimentConfig,
    device: torch.device,
    repeats: int,
    report: Callable[[BenchRow], None] = lambda row: None,
) -> List[BenchRow]:
    """Training step and inference, each with its baseline; bf16 too where the device computes it.

    `report` receives each row as soon as it is measured.
    """
    rows: List[BenchRow] = []

    def add(task: str, precision: str, layout: str, measured: Measurement, baseline: Optional[str]) -> None:
        base = next((r for r in rows if r.name == baseline), None)
        ratio = measured.median_s / base.measurement.median_s if base is not None else None
        rows.append(BenchRow(task, precision, layout, measured, baseline, ratio))
        report(rows[-1])
        _release(device)

    step_fp32 = f"{TRAINING_STEP}, fp32, default"
    add(
        TRAINING_STEP,
        "fp32",
        "default",
        _training_step(experiment, device, False, repeats, TrainingStep),
        None,
    )
    if experiment.method == "mstkd" and experiment.loss.gsme:
        two = _training_step(experiment, device, False, repeats, TwoBackwardStep)
        add(TWO_BACKWARD_STEP, "fp32", "default", two, step_fp32)
    for layout in LAYOUTS:
        baseline = None if layout == "default" else f"{INFERENCE}, fp32, default"
        add(INFERENCE, "fp32", layout, _inference(experiment, device, False, layout, repeats), baseline)
    if bf16_support(device)[0]:
        add(
            TRAINING_STEP,
            "bf16",
            "default",
            _training_step(experiment, device, True, repeats, TrainingStep),
            step_fp32,
        )
        for layout in LAYOUTS:
            measured = _inference(experiment, device, True, layout, repeats)
            add(INFERENCE, "bf16", layout, measured, f"{INFERENCE}, fp32, {layout}")
    return rows


def _training_step(
    experiment: ExperimentConfig, device: torch.device, bf16: bool, repeats: int, kind: type
) -> Measurement:
    torch.manual_seed(0)
    networks = build_networks(experiment, device)
    train = dataclasses.replace(experiment.train, bf16=bf16)
    # The learning rate must not decay to 0 within the measured steps.
    schedule = Schedule(total_steps=repeats + 2, steps_per_epoch=1)
    labels = label_convention(experiment.data.labels)
    step = kind(experiment, train, networks, trainable_module(experiment, networks), labels, device, schedule)
    batch = synthetic_batch(experiment, train.batch_size)
    return measure(lambda: step(batch, epoch=0.0), device, repeats)


def _inference(
    experiment: ExperimentConfig, device: torch.device, bf16: bool, layout: str, repeats: int
) -> Measurement:
    torch.manual_seed(0)
    network = build_inference_network(experiment, device).to(memory_format=LAYOUTS[layout]).eval()
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
