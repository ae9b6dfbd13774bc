"""Content and global style matching (GSME feature matching) between teacher and student.

Neither side is detached (online co-training, as in the reference's content term).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def content_loss(teacher: Tensor, student: Tensor) -> Tensor:
    """MSE between the teacher's and the student's content feature (c4d)."""
    return F.mse_loss(student.float(), teacher.float())


def cross_gram(later: Tensor, earlier: Tensor) -> Tensor:
    """Per-sample cross-Gram F_i F_{i-1}^T / (C*D*H*W) of two (B, C, D, H, W) features: (B, C, C)."""
    a, b = later.float().flatten(2), earlier.float().flatten(2)
    # Autocast would run bmm in half precision, and M_t - M_s then cancels most of its digits.
    with torch.autocast(device_type=a.device.type, enabled=False):
        return torch.bmm(a, b.transpose(1, 2)) / (a.shape[1] * a.shape[2])


def style_matching_loss(teacher: Sequence[Tensor], student: Sequence[Tensor]) -> Tensor:
    """Sum over consecutive pairs (i, i-1), cyclically, of ||M_t - M_s||_F^2, averaged over the batch.

    With the style features (c3d, style, c4d) the pairs are (c3d, c4d), (style, c3d), (c4d, style).
    """
    if len(teacher) != len(student) or len(teacher) < 2:
        raise ValueError("style matching needs the same list of at least 2 features from both networks.")
    loss = teacher[0].new_zeros((), dtype=torch.float32)
    for i in range(len(teacher)):
        difference = cross_gram(teacher[i], teacher[i - 1]) - cross_gram(student[i], student[i - 1])
        loss = loss + difference.square().sum(dim=(1, 2)).mean()
    return loss
