"""`mstkd info`: print the architecture summary of a config (parameter counts, patch, outputs)."""

from __future__ import annotations

import argparse
import json
from typing import Dict

import torch
from torch import nn

from mstkd.conventions import MODEL_CHANNELS, SEQUENCES
from mstkd.experiment import ExperimentConfig, build_networks, load_experiment
from mstkd.models.mstkdnet import MSTKDNet


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `info` subcommand."""
    parser = subparsers.add_parser("info", help="print the architecture summary of a config")
    parser.add_argument("--config", required=True, help="experiment YAML (see Training/configs/)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting, e.g. --set model.transformer.layers=6 (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print {method, params, patch} as JSON")
    parser.set_defaults(run=run)


def parameter_count(module: nn.Module) -> int:
    """Number of parameters of a module."""
    return sum(p.numel() for p in module.parameters())


def run(args: argparse.Namespace) -> int:
    """Build the config's networks on the meta device (no memory, no time) and describe them."""
    config = load_experiment(args.config, args.overrides)
    networks = build_networks(config, torch.device("meta")).named()
    params = {role: parameter_count(network) for role, network in networks.items()}
    if args.json:
        print(json.dumps({"method": config.method, "params": params, "patch": list(config.patch)}))
    else:
        print(describe(config, networks, params))
    return 0


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
