"""The BatchNorm statistics a trained network normalises with at inference.

MST-KDNet's transformer decoder uses BatchNorm and trains at batch 1, so in training each
sample is normalised with its own statistics, while `.eval()` uses running averages over all
the samples (and subsets of sequences) seen. Three choices, measured by `mstkd bench batchnorm`:
the running statistics; statistics recalibrated by one pass over training patches; or each
sample's own statistics, as in training at batch 1 (an instance norm with BatchNorm's affine).
"""

from __future__ import annotations

import copy
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

RUNNING, RECALIBRATED, PER_SAMPLE = "running", "recalibrated", "per-sample"


def batchnorm_layers(network: nn.Module) -> list:
    """The network's 3D BatchNorm layers."""
    return [m for m in network.modules() if isinstance(m, nn.BatchNorm3d)]


@torch.no_grad()
def recalibrated(network: nn.Module, inputs: Iterable[Tensor]) -> nn.Module:
    """A copy whose running statistics are the plain average over one pass of `inputs` (the rest in eval)."""
    copied = copy.deepcopy(network).eval()
    for layer in batchnorm_layers(copied):
        layer.reset_running_stats()
        layer.momentum = None  # a cumulative average, not an exponential one
        layer.train()
    for batch in inputs:
        copied(batch)
    return copied.eval()


def per_sample(network: nn.Module) -> nn.Module:
    """A copy whose BatchNorm layers normalise each sample with its own statistics, as at batch 1."""
    copied = copy.deepcopy(network).eval()
    for parent in list(copied.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.BatchNorm3d):
                setattr(parent, name, SampleNorm3d(child))
    return copied


class SampleNorm3d(nn.Module):
    """A BatchNorm3d's affine map applied after normalising each sample by its own statistics."""

    def __init__(self, batchnorm: nn.BatchNorm3d) -> None:
        super().__init__()
        self.batchnorm = batchnorm

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, D, H, W) -> the same, each sample and channel over its own voxels."""
        layer = self.batchnorm
        return F.instance_norm(x, weight=layer.weight, bias=layer.bias, use_input_stats=True, eps=layer.eps)
