"""Architecture summaries: parameter counts of an experiment's networks, in words or as data."""

from __future__ import annotations

from typing import Dict

import torch
from torch import nn

from mstkd.conventions import MODEL_CHANNELS, SEQUENCES
from mstkd.experiment.definition import ExperimentConfig
from mstkd.experiment.networks import build_networks
from mstkd.models.mstkdnet import MSTKDNet


def parameter_count(module: nn.Module) -> int:
    """Number of parameters of a module."""
    return sum(p.numel() for p in module.parameters())


def meta_networks(config: ExperimentConfig) -> Dict[str, nn.Module]:
    """The config's networks by role, built on the meta device (no memory, no time)."""
    return build_networks(config, torch.device("meta")).named()


def describe(config: ExperimentConfig, networks: Dict[str, nn.Module], params: Dict[str, int]) -> str:
    """The human-readable summary."""
    activation = "softmax" if config.method == "magms" else "sigmoid"
    lines = [
        f"method: {config.method}",
        f"input patch: {len(SEQUENCES)} x {' x '.join(str(s) for s in config.patch)} "
        f"(channels {', '.join(SEQUENCES)})",
        f"output channels: {', '.join(MODEL_CHANNELS)} ({activation})",
        "parameters:",
    ]
    for role, network in networks.items():
        line = f"  {role:<14}{params[role]:>14,}"
        if isinstance(network, MSTKDNet):
            share = parameter_count(network.bottleneck)
            line += f"  (transformer {share:,} = {100 * share / params[role]:.1f}%)"
        lines.append(line)
    return "\n".join(lines)
