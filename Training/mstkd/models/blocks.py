"""Convolutional building blocks shared by the MST-KDNet encoder, content branch and decoder."""

from __future__ import annotations

from torch import Tensor, nn


class BasicBlock(nn.Module):
    """Myronenko's pre-activation residual block: (GroupNorm -> ReLU -> Conv3x3x3) twice, plus identity."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(groups, channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(channels, channels, 3, padding=1),
            nn.GroupNorm(groups, channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(channels, channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        """x + F(x), same shape."""
        return x + self.body(x)


def basic_blocks(channels: int, count: int, groups: int) -> nn.Sequential:
    """`count` BasicBlocks in a row (an empty Sequential is the identity)."""
    return nn.Sequential(*(BasicBlock(channels, groups) for _ in range(count)))


def downsample(in_channels: int, out_channels: int) -> nn.Conv3d:
    """Stride-2 Conv3x3x3 that halves every side and changes the width."""
    return nn.Conv3d(in_channels, out_channels, 3, stride=2, padding=1)


def pointwise(in_channels: int, out_channels: int) -> nn.Conv3d:
    """Conv1x1x1: mixes channels only."""
    return nn.Conv3d(in_channels, out_channels, 1)


class DecoderStage(nn.Module):
    """Conv1x1 (narrow) -> x2 nearest upsampling -> add the encoder skip -> BasicBlock."""

    def __init__(self, in_channels: int, out_channels: int, groups: int) -> None:
        super().__init__()
        self.narrow = pointwise(in_channels, out_channels)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.refine = BasicBlock(out_channels, groups)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        """Upsample `x` to `skip`'s size and width, add `skip`, refine."""
        return self.refine(self.upsample(self.narrow(x)) + skip)
