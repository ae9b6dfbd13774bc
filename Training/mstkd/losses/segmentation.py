"""Segmentation losses: per-channel soft Dice (MST-KDNet) and Dice + cross-entropy (MAG-MS)."""

from __future__ import annotations

from monai.losses import DiceCELoss
from torch import Tensor

# The reference's soft Dice keeps only a denominator epsilon, so an absent structure costs a
# constant 1 with no gradient (it neither rewards nor punishes an empty prediction).
DICE_EPSILON = 1e-7

# MAG-MS's reference uses MONAI's DiceCELoss with softmax and its default smoothing; the
# target here is already one-hot (B, C, ...), which the CE part reads as class probabilities.
_DICE_CE = DiceCELoss(softmax=True)


def soft_dice_loss(probabilities: Tensor, target: Tensor) -> Tensor:
    """Sum over channels of 1 - 2|p t| / (|p|^2 + |t|^2), each channel pooled over batch and voxels."""
    p, t = probabilities.float().flatten(2), target.float().flatten(2)
    intersection = (p * t).sum(dim=(0, 2))
    denominator = (p * p).sum(dim=(0, 2)) + (t * t).sum(dim=(0, 2))
    return (1.0 - 2.0 * intersection / (denominator + DICE_EPSILON)).sum()


def dice_ce_loss(logits: Tensor, target: Tensor) -> Tensor:
    """MONAI DiceCE of softmax(logits) against a one-hot target (MAG-MS's per-output loss)."""
    return _DICE_CE(logits.float(), target.float())
