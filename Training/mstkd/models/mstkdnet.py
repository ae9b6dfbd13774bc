"""MST-KDNet: the one network class of both teacher and student (METHOD.md 1.2)."""

from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import Tensor, nn

from mstkd.conventions import MODEL_CHANNELS, SEQUENCES
from mstkd.errors import MSTKDError
from mstkd.models.blocks import DecoderStage, basic_blocks, downsample, pointwise
from mstkd.models.bottleneck import TransformerBottleneck
from mstkd.models.checks import check_input
from mstkd.models.config import ENCODER_STRIDE, TOKEN_SIZE, MSTKDNetConfig
from mstkd.models.outputs import MSTKDNetOutput


class MSTKDNet(nn.Module):
    """Residual 3D encoder, transformer bottleneck, content/style branch, residual decoder.

    Takes (B, 4, *patch) with the sequences in canonical order (missing ones zero-filled) and
    returns an MSTKDNetOutput. The transformer's learned positional embedding has one entry per
    token of `patch`, so the network takes exactly that size; whole volumes go through sliding
    windows of it. (Interpolating the embedding would run the network on a token layout it was
    never trained on, so a different size is refused instead.)
    """

    def __init__(self, config: MSTKDNetConfig, patch: Sequence[int]) -> None:
        super().__init__()
        multiple = config.patch_multiple
        if len(patch) != 3 or any(side <= 0 or side % multiple for side in patch):
            raise MSTKDError(
                f"MST-KDNet needs a patch of three positive multiples of {multiple}; got {list(patch)}."
            )
        self.patch: Tuple[int, int, int] = (patch[0], patch[1], patch[2])
        width, groups = config.base_width, config.groups
        w1, w2, w4, w8 = width, 2 * width, 4 * width, 8 * width
        blocks1, blocks2, blocks3 = config.encoder_blocks

        self.stem = nn.Conv3d(len(SEQUENCES), w1, 3, padding=1)
        self.stage1 = basic_blocks(w1, blocks1, groups)
        self.down1 = downsample(w1, w2)
        self.stage2 = basic_blocks(w2, blocks2, groups)
        self.down2 = downsample(w2, w4)
        self.stage3 = basic_blocks(w4, blocks3, groups)
        self.down3 = downsample(w4, w8)

        grid = tuple(side // (ENCODER_STRIDE * TOKEN_SIZE) for side in self.patch)
        self.bottleneck = TransformerBottleneck(w8, grid, config.transformer)

        self.content = basic_blocks(w8, config.content_blocks, groups)
        self.pool = nn.MaxPool3d(2)
        self.style = pointwise(w4 + w8 + w8, w8)
        self.fuse = pointwise(w8 + w8, w8)
        self.dropout = nn.Dropout(config.dropout)

        self.up3 = DecoderStage(w8, w4, groups)
        self.up2 = DecoderStage(w4, w2, groups)
        self.up1 = DecoderStage(w2, w1, groups)
        self.head = pointwise(w1, len(MODEL_CHANNELS))

    @property
    def style_channels(self) -> int:
        """Channels of the style map the discriminator sees."""
        return self.style.out_channels

    @property
    def style_size(self) -> Tuple[int, int, int]:
        """Spatial size of the style map (1/8 of the patch)."""
        d, h, w = (side // ENCODER_STRIDE for side in self.patch)
        return (d, h, w)

    def forward(self, x: Tensor) -> MSTKDNetOutput:
        """(B, 4, *patch) -> logits, probabilities and every feature the losses need."""
        check_input(x, "MST-KDNet", size=self.patch)
        c1 = self.stage1(self.stem(x))
        c2 = self.stage2(self.down1(c1))
        c2d = self.down2(c2)
        c3 = self.stage3(c2d)
        c3d = self.down3(c3)

        transformed, transformer_features, attention_maps = self.bottleneck(c3d)
        out = transformed + c3d
        c4d = self.content(out)
        style = self.style(torch.cat([self.pool(c2d), c3d, out], dim=1))
        fused = self.dropout(self.fuse(torch.cat([style, c4d], dim=1)))

        logits = self.head(self.up1(self.up2(self.up3(fused, c3), c2), c1))
        return MSTKDNetOutput(
            logits=logits,
            probabilities=torch.sigmoid(logits),
            transformer_features=transformer_features,
            attention_maps=attention_maps,
            content=c4d,
            style_features=(c3d, style, c4d),
        )
