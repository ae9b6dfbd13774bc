"""One optimisation step of each method: forward, objective, backward, optimiser step(s).

The trainer and `mstkd bench model` run the same steps, so what is benchmarked is what trains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Tuple

import torch
import torch.distributed as dist
from torch import Tensor, nn

from mstkd.conventions import LabelConvention
from mstkd.devices import autocast
from mstkd.experiment import ExperimentConfig, Networks, inference_network
from mstkd.experiment.sections import TrainConfig
from mstkd.losses.objective import (
    BaselineObjective,
    MAGMSObjective,
    MSTKDObjective,
    ObjectiveResult,
    discriminator_objective,
)
from mstkd.models.outputs import MSTKDNetOutput
from mstkd.targets import labels_to_channels
from mstkd.training.data import LABEL, STUDENT, TEACHER
from mstkd.training.schedule import Schedule

DISCRIMINATOR_TERM = "discriminator"


class CoTrainingPair(nn.Module):
    """Teacher and student as one module: one optimiser and one DDP wrapper cover both."""

    def __init__(self, teacher: nn.Module, student: nn.Module) -> None:
        super().__init__()
        self.teacher, self.student = teacher, student

    def forward(self, teacher_image: Tensor, student_image: Tensor) -> Tuple[MSTKDNetOutput, MSTKDNetOutput]:
        """The teacher on all four sequences, the student on the drawn subset."""
        return self.teacher(teacher_image), self.student(student_image)


@dataclass
class StepResult:
    """What one step reports: the total loss, every term and its weight, as floats.

    `gradient_norms` (when asked for) holds, for each weighted term, the L2 norm of the
    gradient it alone sends to the inference network's parameters (the student; MAG-MS's
    one network): what drives the network being trained.
    """

    total: float
    terms: Dict[str, float]
    weights: Dict[str, float] = field(default_factory=dict)
    gradient_norms: Dict[str, float] = field(default_factory=dict)


class TrainingStep:
    """Runs one optimisation step of the experiment's method on a batch.

    `trainable` is the module the main optimiser updates (the teacher-student pair, the
    student, or the MAG-MS network), possibly wrapped in DistributedDataParallel.
    """

    def __init__(
        self,
        experiment: ExperimentConfig,
        train: TrainConfig,
        networks: Networks,
        trainable: nn.Module,
        labels: LabelConvention,
        device: torch.device,
        schedule: Schedule,
    ) -> None:
        self.method, self.train, self.networks = experiment.method, train, networks
        self.trainable, self.labels, self.device = trainable, labels, device
        self.student_parameters: List[nn.Parameter] = list(
            inference_network(experiment, networks).parameters()
        )
        self.optimiser = torch.optim.Adam(
            trainable.parameters(),
            lr=train.learning_rate,
            weight_decay=train.weight_decay,
            amsgrad=train.amsgrad,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimiser, schedule.lr_factor)
        self.discriminator_optimiser: Optional[torch.optim.Optimizer] = None
        if self.method == "mstkd":
            self.objective = MSTKDObjective(experiment.loss)
            if experiment.loss.gsme:
                # Created once for the whole run (the reference re-creates it every step).
                self.discriminator_optimiser = torch.optim.Adam(
                    networks.discriminator.parameters(),
                    lr=train.discriminator_learning_rate,
                    betas=tuple(train.discriminator_betas),
                )
        elif self.method == "baseline":
            self.objective = BaselineObjective()
        else:
            self.objective = MAGMSObjective(experiment.loss)

    def __call__(
        self, batch: Mapping[str, Tensor], epoch: float, measure_gradients: bool = False
    ) -> StepResult:
        """Forward, backward and update on one batch at a (fractional) epoch.

        `measure_gradients` also measures each term's gradient norm on the student (one extra
        backward pass per term; local to this process, so one rank may do it alone).
        """
        student_image = batch[STUDENT].to(self.device, non_blocking=True)
        target = labels_to_channels(batch[LABEL][:, 0].to(self.device, non_blocking=True), self.labels)
        with autocast(self.device, self.train.bf16):
            if self.method == "mstkd":
                teacher_image = batch[TEACHER].to(self.device, non_blocking=True)
                teacher, student = self.trainable(teacher_image, student_image)
                result = self.objective(teacher, student, target, epoch, self.networks.discriminator)
            elif self.method == "baseline":
                result = self.objective(self.trainable(student_image), target)
            else:
                result = self.objective(self.trainable(student_image, None, True), target)
        norms = self._gradient_norms(result) if measure_gradients else {}
        self._update(self.optimiser, self.trainable, lambda: self.backward(result))
        self.scheduler.step()
        terms = _floats(result)
        if self.discriminator_optimiser is not None:
            with autocast(self.device, self.train.bf16):
                loss = discriminator_objective(self.networks.discriminator, teacher, student)
            self._update(
                self.discriminator_optimiser, self.networks.discriminator, loss.backward, all_reduce=True
            )
            terms[DISCRIMINATOR_TERM] = float(loss.detach())
        return StepResult(float(result.total.detach()), terms, dict(result.weights), norms)

    def _gradient_norms(self, result: ObjectiveResult) -> Dict[str, float]:
        """The L2 norm of each weighted term's gradient on the student's parameters."""
        norms = {}
        for name, term in result.weighted.items():
            if not term.requires_grad:
                norms[name] = 0.0
                continue
            grads = torch.autograd.grad(term, self.student_parameters, retain_graph=True, allow_unused=True)
            present = [g.float().square().sum() for g in grads if g is not None]
            norms[name] = float(torch.stack(present).sum().sqrt()) if present else 0.0
        return norms

    def backward(self, result: ObjectiveResult) -> None:
        """The gradients of the whole objective, in one backward pass (the reference code takes two)."""
        result.total.backward()

    def _update(
        self,
        optimiser: torch.optim.Optimizer,
        module: nn.Module,
        backward: Callable[[], None],
        all_reduce=False,
    ) -> None:
        optimiser.zero_grad(set_to_none=True)
        backward()
        if all_reduce and dist.is_initialized():
            # The discriminator runs twice per step, which DDP's reducer does not allow;
            # averaging its few gradients by hand keeps the ranks in step.
            world = dist.get_world_size()
            for parameter in module.parameters():
                if parameter.grad is not None:
                    dist.all_reduce(parameter.grad)
                    parameter.grad /= world
        if self.train.gradient_clamp is not None:
            clamp_gradients(module.parameters(), self.train.gradient_clamp)
        if self.train.gradient_clip is not None:
            torch.nn.utils.clip_grad_norm_(module.parameters(), self.train.gradient_clip)
        optimiser.step()

    def state_dict(self) -> Dict[str, object]:
        """Optimiser and scheduler states, for resuming."""
        state = {"optimiser": self.optimiser.state_dict(), "scheduler": self.scheduler.state_dict()}
        if self.discriminator_optimiser is not None:
            state["discriminator_optimiser"] = self.discriminator_optimiser.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        """Restore what `state_dict` returned."""
        self.optimiser.load_state_dict(state["optimiser"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.discriminator_optimiser is not None:
            self.discriminator_optimiser.load_state_dict(state["discriminator_optimiser"])


def clamp_gradients(parameters: Iterable[nn.Parameter], bound: float) -> None:
    """Clamp every gradient element to [-bound, bound], NaN to 0 (MAG-MS's reference hook)."""
    for parameter in parameters:
        if parameter.grad is not None:
            parameter.grad.nan_to_num_(0.0).clamp_(-bound, bound)


def trainable_module(experiment: ExperimentConfig, networks: Networks) -> nn.Module:
    """The module the main optimiser updates for the experiment's method."""
    if experiment.method == "mstkd":
        return CoTrainingPair(networks.teacher, networks.student)
    if experiment.method == "baseline":
        return networks.student
    return networks.network


def _floats(result: ObjectiveResult) -> Dict[str, float]:
    return {name: float(value) for name, value in result.terms.items()}
