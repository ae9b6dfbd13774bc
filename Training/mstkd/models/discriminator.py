"""The GSME style discriminator: tells the teacher's style map from the student's."""

from __future__ import annotations

from typing import Sequence, Tuple

from torch import Tensor, nn

from mstkd.errors import MSTKDError


def discriminator_output_size(size: Sequence[int], convs: int) -> Tuple[int, ...]:
    """Spatial size after `convs` k4 s2 p1 convolutions (each halves a side, rounding down)."""
    return tuple(side // 2**convs for side in size)


class StyleDiscriminator(nn.Module):
    """k4 s2 p1 Conv3d + LeakyReLU(0.2) per width, then one conv over the whole remaining map.

    It sees the `style` map (MSTKDNetOutput.style_features[1]), as the reference's train.py does.
    The last conv's kernel spans the map left after the strided convs, so it yields exactly one
    logit per sample; at the reference size that is the reference's (2, 3, 2) kernel on a
    20 x 24 x 16 style map. Hence the discriminator is built for one style-map size.
    """

    def __init__(self, channels: int, widths: Sequence[int], size: Sequence[int]) -> None:
        super().__init__()
        remaining = discriminator_output_size(size, len(widths))
        if min(remaining) < 1:
            raise MSTKDError(
                f"The style map {tuple(size)} is too small for {len(widths)} stride-2 discriminator "
                f"convolutions; use fewer model.discriminator_widths or a larger patch."
            )
        self.channels = channels
        self.size = tuple(size)
        layers = []
        for width in widths:
            layers += [nn.Conv3d(channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
            channels = width
        layers.append(nn.Conv3d(channels, 1, remaining))
        self.layers = nn.Sequential(*layers)

    def forward(self, style: Tensor) -> Tensor:
        """(B, C, D, H, W) style map -> (B,) logits (high = "student")."""
        if style.ndim != 5 or style.shape[1] != self.channels or tuple(style.shape[2:]) != self.size:
            raise MSTKDError(
                f"The style discriminator expects a style map of shape (batch, {self.channels}, "
                f"{', '.join(str(s) for s in self.size)}); got {tuple(style.shape)}."
            )
        return self.layers(style).flatten()
