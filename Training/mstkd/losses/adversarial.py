"""GSME adversarial learning: a discriminator tells teacher style features (label 0, the "source")
from the student's (label 1); the student is trained to be taken for the teacher.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

TEACHER_LABEL = 0.0
STUDENT_LABEL = 1.0


def generator_loss(discriminator: nn.Module, student_style: Tensor) -> Tensor:
    """BCE(D(student style), teacher label): gradients reach the student, never the discriminator.

    The discriminator runs on detached copies of its parameters, so this term can share one
    backward pass with the rest of the objective without touching the discriminator's grads.
    Pass the bare module, not a DistributedDataParallel wrapper.
    """
    frozen = {name: p.detach() for name, p in discriminator.named_parameters()}
    logits = functional_call(discriminator, frozen, (student_style,))
    return _bce(logits, TEACHER_LABEL)


def discriminator_loss(discriminator: nn.Module, teacher_style: Tensor, student_style: Tensor) -> Tensor:
    """BCE(D(teacher), 0) + BCE(D(student), 1) on detached features: trains the discriminator only."""
    teacher_term = _bce(discriminator(teacher_style.detach()), TEACHER_LABEL)
    student_term = _bce(discriminator(student_style.detach()), STUDENT_LABEL)
    return teacher_term + student_term


def _bce(logits: Tensor, label: float) -> Tensor:
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label))
