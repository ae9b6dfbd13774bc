"""The networks of an experiment: those it trains, and the one inference runs."""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Dict, Optional

import torch
from torch import nn

from mstkd.experiment.definition import ExperimentConfig
from mstkd.models.discriminator import StyleDiscriminator
from mstkd.models.magms import MAGMSNet
from mstkd.models.mstkdnet import MSTKDNet


@dataclass
class Networks:
    """The networks an experiment trains; the ones its method does not use are None."""

    teacher: Optional[MSTKDNet] = None
    student: Optional[MSTKDNet] = None
    discriminator: Optional[StyleDiscriminator] = None
    network: Optional[MAGMSNet] = None

    def named(self) -> Dict[str, nn.Module]:
        """The networks present by role: teacher, student, discriminator; student; or network."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) is not None
        }


def build_networks(config: ExperimentConfig, device: Optional[torch.device] = None) -> Networks:
    """Fresh networks for `config`, created directly on `device` (torch.device('meta') costs no memory)."""
    with torch.device(device) if device is not None else contextlib.nullcontext():
        if config.method == "magms":
            return Networks(network=MAGMSNet(config.model))
        student = MSTKDNet(config.model, config.patch)
        if config.method == "baseline":
            return Networks(student=student)
        discriminator = StyleDiscriminator(
            student.style_channels, config.model.discriminator_widths, student.style_size
        )
        return Networks(
            teacher=MSTKDNet(config.model, config.patch), student=student, discriminator=discriminator
        )


def build_inference_network(config: ExperimentConfig, device: Optional[torch.device] = None) -> nn.Module:
    """The one network inference runs: the MST-KDNet student (mstkd, baseline) or MAG-MS."""
    with torch.device(device) if device is not None else contextlib.nullcontext():
        if config.method == "magms":
            return MAGMSNet(config.model)
        return MSTKDNet(config.model, config.patch)


def inference_network(config: ExperimentConfig, networks: Networks) -> nn.Module:
    """Of a training run's networks, the one inference uses (and the one a model file holds)."""
    return networks.network if config.method == "magms" else networks.student
