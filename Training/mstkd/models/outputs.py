"""What the networks return: typed structures, so that losses never index outputs by position."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Tuple

from torch import Tensor


@dataclass
class MSTKDNetOutput:
    """One forward pass of an MST-KDNet (teacher or student).

    Channels of `logits`/`probabilities` follow `conventions.MODEL_CHANNELS`
    (NCR, ED, ET, background); every tensor is batch-first.
    """

    logits: Tensor  # (B, 4, D, H, W)
    probabilities: Tensor  # sigmoid(logits), (B, 4, D, H, W)
    transformer_features: Tuple[Tensor, ...]  # the decoded multi-scale transformer features (MS-TKD)
    attention_maps: Tuple[Tensor, ...]  # softmax attention of the tapped layers, (B, heads, N, N) each
    content: Tensor  # c4d, the content feature (content loss)
    style_features: Tuple[Tensor, Tensor, Tensor]  # (c3d, style, c4d): Global_style for GSME


@dataclass
class MAGMSOutput:
    """One forward pass of MAG-MS: the fused prediction and, in training, each sequence's own.

    `modality_*` are keyed by canonical sequence name and hold only the sequences present;
    they are empty when the network is asked for the fused path alone (inference).
    """

    logits: Tensor  # (B, 4, D, H, W), fused path, channels as conventions.MODEL_CHANNELS
    features: Tuple[Tensor, ...]  # fused encoder features, one per level
    modality_logits: Dict[str, Tensor] = field(default_factory=dict)
    modality_features: Dict[str, Tuple[Tensor, ...]] = field(default_factory=dict)
