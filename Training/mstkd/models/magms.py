"""MAG-MS: one encoder per sequence, mean fusion over the sequences present, one shared decoder.

Follows the reference (kisonho/magnet: networks/unet/encoders.py UNetEncoderWithFuseConv,
networks/unet/decoders.py UNetDecoder, nn/fusion/fuse.py MeanFusion), METHOD.md section 2.
"""

from __future__ import annotations

from typing import Dict, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from mstkd.conventions import MODEL_CHANNELS, SEQUENCES, Subset
from mstkd.errors import MSTKDError
from mstkd.models.checks import check_input
from mstkd.models.config import MAGMSConfig
from mstkd.models.outputs import MAGMSOutput

Features = Tuple[Tensor, ...]
Presence = Union[Subset, Sequence[bool], None]


def conv_norm_act(in_channels: int, out_channels: int, slope: float, stride: int = 1) -> nn.Sequential:
    """Conv3x3x3 -> InstanceNorm -> LeakyReLU (no conv bias: the norm would cancel it)."""
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.InstanceNorm3d(out_channels),
        nn.LeakyReLU(slope),
    )


class EncoderLevel(nn.Module):
    """Conv (stride 2 below level 1), two convs added residually, then a bias-free 1x1 fuse conv."""

    def __init__(self, in_channels: int, out_channels: int, slope: float, stride: int) -> None:
        super().__init__()
        self.entry = conv_norm_act(in_channels, out_channels, slope, stride)
        self.body = nn.Sequential(
            conv_norm_act(out_channels, out_channels, slope), conv_norm_act(out_channels, out_channels, slope)
        )
        self.fuse = nn.Conv3d(out_channels, out_channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """-> (input of the next level, this level's feature for fusion)."""
        x = self.entry(x)
        x = x + self.body(x)
        return x, self.fuse(x)


class SequenceEncoder(nn.Module):
    """The encoder of one sequence (1 input channel): one feature per level, shallow to deep."""

    def __init__(self, config: MAGMSConfig) -> None:
        super().__init__()
        channels = (1, *config.widths)
        self.levels = nn.ModuleList(
            EncoderLevel(channels[i], channels[i + 1], config.negative_slope, 1 if i == 0 else 2)
            for i in range(len(config.widths))
        )

    def forward(self, x: Tensor) -> Features:
        """(B, 1, D, H, W) -> features of every level."""
        features = []
        for level in self.levels:
            x, feature = level(x)
            features.append(feature)
        return tuple(features)


class DecoderLevel(nn.Module):
    """ConvTranspose x2 -> concat the skip -> two Conv3x3x3 + InstanceNorm + LeakyReLU."""

    def __init__(self, in_channels: int, out_channels: int, slope: float) -> None:
        super().__init__()
        self.up = nn.Sequential(
            nn.ConvTranspose3d(
                in_channels, out_channels, 3, stride=2, padding=1, output_padding=1, bias=False
            ),
            nn.InstanceNorm3d(out_channels),
            nn.LeakyReLU(slope),
        )
        self.body = nn.Sequential(
            conv_norm_act(2 * out_channels, out_channels, slope),
            conv_norm_act(out_channels, out_channels, slope),
        )

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        """Upsample x, join the skip, refine."""
        return self.body(torch.cat([self.up(x), skip], dim=1))


class SharedDecoder(nn.Module):
    """Decodes a feature pyramid (fused or one sequence's) into class logits."""

    def __init__(self, config: MAGMSConfig) -> None:
        super().__init__()
        widths = config.widths
        self.levels = nn.ModuleList(
            DecoderLevel(widths[i], widths[i - 1], config.negative_slope)
            for i in range(len(widths) - 1, 0, -1)
        )
        self.head = nn.Conv3d(widths[0], len(MODEL_CHANNELS), 3, padding=1)

    def forward(self, features: Features) -> Tensor:
        """Features shallow to deep -> (B, classes, D, H, W) logits."""
        x = features[-1]
        for level, skip in zip(self.levels, reversed(features[:-1])):
            x = level(x, skip)
        return self.head(x)


def present_sequences(present: Presence) -> Tuple[str, ...]:
    """The canonical names of the sequences present (all four when `present` is None)."""
    if present is None:
        return SEQUENCES
    if isinstance(present, Subset):
        return present.sequences
    flags = tuple(bool(flag) for flag in present)
    if len(flags) != len(SEQUENCES) or not any(flags):
        raise MSTKDError(
            f"Say which sequences are present with {len(SEQUENCES)} flags in the order "
            f"{', '.join(SEQUENCES)}, at least one true; got {list(present)}."
        )
    return tuple(name for name, flag in zip(SEQUENCES, flags) if flag)


class MAGMSNet(nn.Module):
    """Modality-agnostic network: encode each present sequence, average per level, decode."""

    def __init__(self, config: MAGMSConfig) -> None:
        super().__init__()
        self.multiple = config.patch_multiple
        self.encoders = nn.ModuleDict({name: SequenceEncoder(config) for name in SEQUENCES})
        self.decoder = SharedDecoder(config)

    def forward(self, x: Tensor, present: Presence = None, per_modality: bool = False) -> MAGMSOutput:
        """(B, 4, D, H, W) in canonical order -> fused logits (and each sequence's, if `per_modality`).

        Absent sequences are skipped, not zero-filled, so their channels may hold anything.
        `present` applies to the whole batch. `per_modality` (training) also decodes every
        present sequence's own features.
        """
        names = present_sequences(present)
        index = [SEQUENCES.index(name) for name in names]
        check_input(x, "MAG-MS", multiple=self.multiple, channels=index)
        encoded: Dict[str, Features] = {
            name: self.encoders[name](x[:, i : i + 1]) for name, i in zip(names, index)
        }
        fused = fuse(list(encoded.values()))
        modality_logits: Dict[str, Tensor] = {}
        modality_features: Dict[str, Features] = {}
        if per_modality:
            modality_features = encoded
            modality_logits = {name: self.decoder(features) for name, features in encoded.items()}
        return MAGMSOutput(
            logits=self.decoder(fused),
            features=fused,
            modality_logits=modality_logits,
            modality_features=modality_features,
        )


def fuse(pyramids: Sequence[Features]) -> Features:
    """Per level, the mean of the given feature pyramids (the mean of one is that pyramid, exactly)."""
    return tuple(torch.stack(level).mean(dim=0) for level in zip(*pyramids))
