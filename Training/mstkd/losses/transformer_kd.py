"""Multi-Scale Transformer Knowledge Distillation (MS-TKD): decoded features and attention maps.

Neither side is detached: teacher and student are co-trained online and the reference lets
these terms pull both networks towards each other.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def transformer_feature_loss(teacher: Sequence[Tensor], student: Sequence[Tensor]) -> Tensor:
    """Sum over the decoded transformer scales of MSE(teacher, student)."""
    _check_pairs(teacher, student, "transformer features")
    return torch.stack([F.mse_loss(s.float(), t.float()) for t, s in zip(teacher, student)]).sum()


def attention_extreme_value_loss(teacher: Sequence[Tensor], student: Sequence[Tensor]) -> Tensor:
    """Extreme-value distillation: sum_k sum_{max,min,mean} MSE(A_k^t M^t, A_k^s M^s).

    Maps are (B, heads, N, N) softmax attentions; each is scaled by its token count N so a
    uniform map reads 1 (see `LossConfig` for the effective weight against the reference).
    """
    _check_pairs(teacher, student, "attention maps")
    t, s = _tokens_scaled(teacher), _tokens_scaled(student)
    loss = t.new_zeros(())
    for extreme in (_max, _min, _mean):
        difference = t * extreme(t) - s * extreme(s)
        loss = loss + difference.square().flatten(1).mean(dim=1).sum()
    return loss


def _tokens_scaled(maps: Sequence[Tensor]) -> Tensor:
    stacked = torch.stack([m.float() for m in maps])
    return stacked * stacked.shape[-1]


def _max(stacked: Tensor) -> Tensor:
    return stacked.max(dim=0).values


def _min(stacked: Tensor) -> Tensor:
    return stacked.min(dim=0).values


def _mean(stacked: Tensor) -> Tensor:
    return stacked.mean(dim=0)


def _check_pairs(teacher: Sequence[Tensor], student: Sequence[Tensor], what: str) -> None:
    if len(teacher) != len(student) or not teacher:
        raise ValueError(f"teacher and student must give the same non-zero number of {what}.")
