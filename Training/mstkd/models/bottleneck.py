"""The transformer bottleneck of MST-KDNet: a ViT over `c3d` and a UNETR-style decoder back to it.

Geometry follows the reference (Quanato607/MST-KDNet, models/unetr.py). With the token grid G
(c3d / 4) and feature widths f, 2f, 4f, 8f (64/128/256/512 at the reference size):
  z12 -> deconv                                      -> 8f at 2G
  z9  -> deconv block, cat z12, 3 convs, deconv      -> 4f at 4G (= c3d)
  z6  -> 2 deconv blocks, cat z9, 2 convs, deconv    -> 2f at 8G
  z3  -> 3 deconv blocks, cat z6, 2 stride-2 convs, deconv -> f at 4G
  out =  head(cat[2 convs(c3d), z3])                 -> c3d's width at c3d's size
The decoded (z3, z6, z9, z12) are the multi-scale features that MS-TKD distils.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor, nn

from mstkd.models.config import TransformerConfig
from mstkd.models.transformer import Grid, TransformerEncoder


def conv_block(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """Conv3x3x3 -> BatchNorm -> ReLU (the reference's Conv3DBlock, minus the conv bias BatchNorm cancels)."""
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm3d(out_channels),
        nn.ReLU(inplace=True),
    )


def upsample(in_channels: int, out_channels: int) -> nn.ConvTranspose3d:
    """x2 transposed convolution, kernel 2."""
    return nn.ConvTranspose3d(in_channels, out_channels, 2, stride=2)


def deconv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """x2 transposed convolution -> Conv3x3x3 -> BatchNorm -> ReLU (the reference's Deconv3DBlock)."""
    return nn.Sequential(upsample(in_channels, out_channels), *conv_block(out_channels, out_channels))


class TransformerBottleneck(nn.Module):
    """T(c3d) of `out = T(c3d) + c3d`, plus the decoded tapped features and attention maps."""

    def __init__(self, channels: int, grid: Grid, config: TransformerConfig) -> None:
        super().__init__()
        hidden = config.hidden_size
        f3, f6, f9, f12 = (config.feature_width * 2**level for level in range(4))
        self.grid = grid
        self.encoder = TransformerEncoder(channels, grid, config)
        self.decode12 = upsample(hidden, f12)
        self.decode9 = deconv_block(hidden, f12)
        self.merge9 = nn.Sequential(
            conv_block(2 * f12, f12), conv_block(f12, f12), conv_block(f12, f12), upsample(f12, f9)
        )
        self.decode6 = nn.Sequential(deconv_block(hidden, f12), deconv_block(f12, f9))
        self.merge6 = nn.Sequential(conv_block(2 * f9, f9), conv_block(f9, f9), upsample(f9, f6))
        self.decode3 = nn.Sequential(deconv_block(hidden, f12), deconv_block(f12, f9), deconv_block(f9, f6))
        # The reference brings z3 from 8G down to 2G and up again to land on c3d's size.
        self.merge3 = nn.Sequential(
            conv_block(2 * f6, f6, stride=2), conv_block(f6, f6, stride=2), upsample(f6, f3)
        )
        self.skip = nn.Sequential(conv_block(channels, f3 // 2), conv_block(f3 // 2, f3))
        self.head = nn.Sequential(conv_block(2 * f3, f3), conv_block(f3, f3), nn.Conv3d(f3, channels, 1))

    def forward(self, c3d: Tensor) -> Tuple[Tensor, Tuple[Tensor, ...], Tuple[Tensor, ...]]:
        """c3d -> (T(c3d), decoded features (z3, z6, z9, z12), attentions of the tapped layers)."""
        hidden, attentions = self.encoder(c3d)
        z3, z6, z9, z12 = (self._to_grid(h) for h in hidden)
        z12 = self.decode12(z12)
        z9 = self.merge9(torch.cat([self.decode9(z9), z12], dim=1))
        z6 = self.merge6(torch.cat([self.decode6(z6), z9], dim=1))
        z3 = self.merge3(torch.cat([self.decode3(z3), z6], dim=1))
        out = self.head(torch.cat([self.skip(c3d), z3], dim=1))
        return out, (z3, z6, z9, z12), tuple(attentions)

    def _to_grid(self, tokens: Tensor) -> Tensor:
        """(B, N, hidden) tokens -> (B, hidden, *grid) map."""
        return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *self.grid)
