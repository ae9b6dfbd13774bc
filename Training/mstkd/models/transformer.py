"""A pre-LayerNorm vision transformer over a 3D feature map that also returns its attention maps.

Written out instead of nn.MultiheadAttention because MS-TKD distils the per-head softmax
attention of the tapped layers, so every tapped layer must hand its probabilities back.
"""

from __future__ import annotations

import math
from typing import List, Tuple

import torch
from torch import Tensor, nn

from mstkd.models.config import TOKEN_SIZE, TransformerConfig

Grid = Tuple[int, int, int]


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention that returns the softmax attention too."""

    def __init__(self, hidden_size: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.out = nn.Linear(hidden_size, hidden_size)
        self.attention_dropout = nn.Dropout(dropout)
        self.output_dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """(B, N, C) tokens -> (attended tokens (B, N, C), attention (B, heads, N, N))."""
        batch, tokens, width = x.shape
        head_width = width // self.heads
        q, k, v = self.qkv(x).view(batch, tokens, 3, self.heads, head_width).permute(2, 0, 3, 1, 4)
        attention = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(head_width), dim=-1)
        mixed = self.attention_dropout(attention) @ v
        mixed = mixed.transpose(1, 2).reshape(batch, tokens, width)
        return self.output_dropout(self.out(mixed)), attention


class TransformerLayer(nn.Module):
    """Pre-LN block: x + Attn(LN(x)), then x + MLP(LN(x)) with a ReLU MLP as in the reference."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=1e-6)
        self.attention = SelfAttention(config.hidden_size, config.heads, config.dropout)
        self.mlp_norm = nn.LayerNorm(config.hidden_size, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(config.hidden_size, config.mlp_size),
            nn.ReLU(inplace=True),
            nn.Dropout(config.dropout),
            nn.Linear(config.mlp_size, config.hidden_size),
        )

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """(B, N, C) -> (B, N, C) and this layer's attention (B, heads, N, N)."""
        attended, attention = self.attention(self.attention_norm(x))
        x = x + attended
        return x + self.mlp(self.mlp_norm(x)), attention


class TransformerEncoder(nn.Module):
    """Patch embedding + learned positional embedding + transformer layers, tapped at chosen depths.

    The positional embedding has one entry per token of `grid`, so the encoder takes feature
    maps of exactly `grid * TOKEN_SIZE`; the network checks its input size before this runs.
    """

    def __init__(self, channels: int, grid: Grid, config: TransformerConfig) -> None:
        super().__init__()
        self.tapped_layers = config.tapped_layers
        self.embed = nn.Conv3d(channels, config.hidden_size, TOKEN_SIZE, stride=TOKEN_SIZE)
        self.position = nn.Parameter(torch.zeros(1, math.prod(grid), config.hidden_size))
        self.embed_dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(TransformerLayer(config) for _ in range(config.layers))

    def forward(self, x: Tensor) -> Tuple[List[Tensor], List[Tensor]]:
        """(B, C, D, H, W) -> hidden states (B, N, hidden) and attentions of the tapped layers."""
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        tokens = self.embed_dropout(tokens + self.position)
        hidden: List[Tensor] = []
        attentions: List[Tensor] = []
        for depth, layer in enumerate(self.layers, start=1):
            tokens, attention = layer(tokens)
            if depth in self.tapped_layers:
                hidden.append(tokens)
                attentions.append(attention)
        return hidden, attentions
