"""The `model:` section of an experiment: every size of MST-KDNet and MAG-MS.

The defaults are the reference sizes (METHOD.md 1.2 and 2); smaller configs override them.
Invalid combinations raise ValueError, which `config.from_mapping` turns into an MSTKDError
naming the section.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Tuple

# The encoder of MST-KDNet halves the resolution three times before the transformer.
ENCODER_STRIDE = 8
# Side of the cubic token at 1/8 resolution. The UNETR-style decoder brings every tapped layer
# from the token grid back to `c3d` with exactly two x2 deconvolutions, so this is part of the
# architecture rather than a setting (reference: UNETR(patch_size=4) in models/MSTKDNet.py).
TOKEN_SIZE = 4
# Number of tapped transformer layers; the UNETR-style decoder has one path per tap.
TAPS = 4


@dataclass(frozen=True)
class TransformerConfig:
    """The UNETR-like transformer bottleneck of MST-KDNet."""

    hidden_size: int = 768
    layers: int = 12
    heads: int = 12
    mlp_size: int = 2048
    dropout: float = 0.1
    # 1-based layers whose hidden states and attention maps are tapped (shallow to deep); the
    # last one is the last layer, since layers after it would feed nothing.
    tapped_layers: Tuple[int, ...] = (3, 6, 9, 12)
    # Channels of the shallowest decoded feature; the deeper ones double (64/128/256/512).
    feature_width: int = 64

    def __post_init__(self) -> None:
        if min(self.hidden_size, self.layers, self.heads, self.mlp_size) < 1:
            raise ValueError("hidden_size, layers, heads and mlp_size must be positive")
        if self.hidden_size % self.heads:
            raise ValueError(f"hidden_size {self.hidden_size} must be a multiple of heads {self.heads}")
        taps = self.tapped_layers
        if len(taps) != TAPS or list(taps) != sorted(set(taps)) or taps[0] < 1 or taps[-1] != self.layers:
            raise ValueError(
                f"tapped_layers {list(taps)} must be {TAPS} increasing layer numbers from 1 up to "
                f"and ending with the last layer ({self.layers})"
            )
        if self.feature_width < 2 or self.feature_width % 2:
            raise ValueError(f"feature_width {self.feature_width} must be an even number >= 2")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout {self.dropout} must be in [0, 1)")


@dataclass(frozen=True)
class MSTKDNetConfig:
    """MST-KDNet (teacher and student share it) and its GSME style discriminator."""

    # Channels of the first encoder stage; the next three double (16/32/64/128).
    base_width: int = 16
    # BasicBlocks at full, 1/2 and 1/4 resolution.
    encoder_blocks: Tuple[int, int, int] = (1, 2, 2)
    # BasicBlocks of the content branch (c4d).
    content_blocks: int = 4
    groups: int = 8
    # Dropout after fusing style and content.
    dropout: float = 0.2
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    # Widths of the discriminator's stride-2 convolutions (it sees the 8*base_width style map).
    discriminator_widths: Tuple[int, ...] = (64, 128, 256)

    def __post_init__(self) -> None:
        if self.base_width < 1 or self.groups < 1 or self.base_width % self.groups:
            raise ValueError(
                f"base_width {self.base_width} must be a positive multiple of groups {self.groups}"
            )
        if min(self.encoder_blocks) < 0 or self.content_blocks < 0:
            raise ValueError("encoder_blocks and content_blocks must not be negative")
        if not self.discriminator_widths or min(self.discriminator_widths) < 1:
            raise ValueError("discriminator_widths must list at least one positive width")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout {self.dropout} must be in [0, 1)")

    @property
    def patch_multiple(self) -> int:
        """Every side of the input patch must be a multiple of this (encoder stride x token size)."""
        return ENCODER_STRIDE * TOKEN_SIZE


@dataclass(frozen=True)
class MAGMSConfig:
    """MAG-MS: one encoder per sequence, mean fusion, one shared decoder."""

    # Channels of each encoder level; every level after the first halves the resolution.
    widths: Tuple[int, ...] = (16, 32, 64, 128)
    negative_slope: float = 0.2

    def __post_init__(self) -> None:
        if len(self.widths) < 2 or min(self.widths) < 1:
            raise ValueError(f"widths {list(self.widths)} must list at least two positive widths")

    @property
    def patch_multiple(self) -> int:
        """Every side of the input must be a multiple of this (the encoder's total stride)."""
        return 2 ** (len(self.widths) - 1)
