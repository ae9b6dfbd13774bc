"""The experiment: what to train (method, network sizes, patch, loss, data, training) and its networks.

Training, inference and the command line build networks from here; this package uses none of them.
`definition` reads and checks an experiment config, `sections` holds its data: and train:
sections, `networks` builds its networks, `summary` counts their parameters.
"""

from __future__ import annotations

from mstkd.experiment.definition import (
    METHODS,
    ExperimentConfig,
    experiment_from_mapping,
    load_experiment,
)
from mstkd.experiment.networks import Networks, build_inference_network, build_networks, inference_network

__all__ = [
    "METHODS",
    "ExperimentConfig",
    "Networks",
    "build_inference_network",
    "build_networks",
    "experiment_from_mapping",
    "inference_network",
    "load_experiment",
]
