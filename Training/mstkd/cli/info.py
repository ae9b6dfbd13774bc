"""`mstkd info`: print the architecture summary of a config (parameter counts, patch, outputs)."""

from __future__ import annotations

import argparse
import json

from mstkd.cli.options import add_overrides


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `info` subcommand."""
    parser = subparsers.add_parser("info", help="print the architecture summary of a config")
    parser.add_argument("--config", required=True, help="experiment YAML (see Training/configs/)")
    add_overrides(parser, "model.transformer.layers=6")
    parser.add_argument("--json", action="store_true", help="print {method, params, patch} as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Describe the config's networks: parameter counts, patch, outputs."""
    from mstkd.experiment import load_experiment
    from mstkd.experiment.summary import describe, meta_networks, parameter_count

    config = load_experiment(args.config, args.overrides)
    networks = meta_networks(config)
    params = {role: parameter_count(network) for role, network in networks.items()}
    if args.json:
        print(json.dumps({"method": config.method, "params": params, "patch": list(config.patch)}))
    else:
        print(describe(config, networks, params))
    return 0
