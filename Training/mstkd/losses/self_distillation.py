"""MAG-MS multi-modality self-distillation: each sequence's output and features learn from the fusion.

The fused side is not detached by default (as in the reference), so these terms pull the
fused path towards each sequence too; `detach_fused` makes the fusion a fixed target.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

CLASS_AXIS = 1


def self_distillation_kl(
    fused_logits: Tensor, modality_logits: Mapping[str, Tensor], temperature: float, detach_fused: bool
) -> Tensor:
    """Sum over sequences of T^2 KL(softmax(y_0) || softmax(y_m / T)), over classes, mean over voxels.

    As in the reference (torchmanager's KLDiv), the temperature divides only the sequence's logits.
    """
    fused = fused_logits.detach() if detach_fused else fused_logits
    log_p_fused = F.log_softmax(fused.float(), dim=CLASS_AXIS)
    loss = log_p_fused.new_zeros(())
    for logits in modality_logits.values():
        log_p_modality = F.log_softmax(logits.float() / temperature, dim=CLASS_AXIS)
        pointwise = F.kl_div(log_p_modality, log_p_fused, reduction="none", log_target=True)
        loss = loss + pointwise.sum(dim=CLASS_AXIS).mean() * temperature**2
    return loss


def feature_distillation_mse(
    fused_features: Sequence[Tensor], modality_features: Mapping[str, Sequence[Tensor]], detach_fused: bool
) -> Tensor:
    """Sum over sequences of MSE(f_m, f_0), with f every encoder level flattened and concatenated."""
    fused = [f.detach() if detach_fused else f for f in fused_features]
    count = sum(f.numel() for f in fused)
    loss = fused[0].new_zeros((), dtype=torch.float32)
    for features in modality_features.values():
        if len(features) != len(fused):
            raise ValueError("every sequence must give one feature per fused encoder level.")
        squared = sum((m.float() - f.float()).square().sum() for m, f in zip(features, fused))
        loss = loss + squared / count
    return loss
