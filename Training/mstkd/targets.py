"""From label maps to the networks' output channels (conventions.MODEL_CHANNELS), the training target."""

from __future__ import annotations

import torch

from mstkd.conventions import MODEL_CHANNELS, LabelConvention


def labels_to_channels(labels: torch.Tensor, convention: LabelConvention) -> torch.Tensor:
    """Label map (..., D, H, W) -> one-hot float channels (..., 4, D, H, W) in MODEL_CHANNELS order.

    Voxels of a sub-region the model does not predict (the 2024 resection cavity) count as background.
    """
    tumour = [labels == convention.values[name] for name in MODEL_CHANNELS[:-1]]
    background = ~torch.stack(tumour).any(dim=0)
    return torch.stack([*tumour, background], dim=-4).float()
