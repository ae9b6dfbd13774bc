"""Dual-Mode Logit Distillation (DMLD): ramped probability MSE and standardised-logit KL.

Neither side is detached (online co-training, as in the reference).
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor

from mstkd.conventions import MODEL_CHANNELS

TUMOUR_CHANNELS = tuple(i for i, name in enumerate(MODEL_CHANNELS) if name != "background")
CLASS_AXIS = 1
STANDARDISATION_EPSILON = 1e-7


def rampup_weight(epoch: float, maximum: float, length: float) -> float:
    """maximum * exp(-5 (1 - e/length)^2) for 0 <= e <= length, then maximum (Laine & Aila)."""
    if length <= 0:
        return maximum
    phase = 1.0 - min(max(epoch, 0.0), length) / length
    return maximum * math.exp(-5.0 * phase * phase)


def probability_consistency_loss(teacher: Tensor, student: Tensor) -> Tensor:
    """Sum over the tumour channels of MSE between teacher and student sigmoid probabilities."""
    channels = list(TUMOUR_CHANNELS)
    difference = teacher[:, channels].float() - student[:, channels].float()
    return difference.square().transpose(0, 1).flatten(1).mean(dim=1).sum()


def standardise(logits: Tensor, dim: int) -> Tensor:
    """Z-score along `dim` (unbiased std plus epsilon, as in 'Logit Standardization in KD')."""
    mean = logits.mean(dim=dim, keepdim=True)
    std = logits.std(dim=dim, keepdim=True)
    return (logits - mean) / (std + STANDARDISATION_EPSILON)


def standardised_logit_kl(
    teacher: Tensor, student: Tensor, temperature: float, reference_axis: bool = False
) -> Tensor:
    """T^2 KL(softmax(Z(l_t)/T) || softmax(Z(l_s)/T)) over classes, averaged over voxels.

    Z standardises each voxel's class logits; `reference_axis` standardises over the last
    spatial axis instead, as the released code does.
    """
    dim = -1 if reference_axis else CLASS_AXIS
    log_p_teacher = F.log_softmax(standardise(teacher.float(), dim) / temperature, dim=CLASS_AXIS)
    log_p_student = F.log_softmax(standardise(student.float(), dim) / temperature, dim=CLASS_AXIS)
    pointwise = F.kl_div(log_p_student, log_p_teacher, reduction="none", log_target=True)
    return pointwise.sum(dim=CLASS_AXIS).mean() * temperature**2
