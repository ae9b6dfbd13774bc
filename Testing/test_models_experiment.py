"""Experiment configs: the shipped YAML files, validation of method/patch/sections, the networks built."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mstkd.errors import MSTKDError
from mstkd.experiment import build_networks, experiment_from_mapping, load_experiment
from mstkd.losses.config import LossConfig
from mstkd.models.config import MAGMSConfig, MSTKDNetConfig
from mstkd.typed_config import to_mapping

CONFIGS = Path(__file__).resolve().parents[1] / "Training" / "configs"


@pytest.mark.parametrize(
    ("name", "method", "roles"),
    [
        ("paper", "mstkd", ["teacher", "student", "discriminator"]),
        ("small", "mstkd", ["teacher", "student", "discriminator"]),
        ("tiny", "mstkd", ["teacher", "student", "discriminator"]),
        ("baseline", "baseline", ["student"]),
        ("magms", "magms", ["network"]),
    ],
)
def test_shipped_configs_build_their_networks(name, method, roles):
    path = CONFIGS / f"{name}.yaml"
    assert path.read_text().startswith("#"), "each config starts with a comment saying what it is for"
    config = load_experiment(path)
    assert config.method == method
    assert isinstance(config.loss, LossConfig)
    assert isinstance(config.model, MAGMSConfig if method == "magms" else MSTKDNetConfig)
    assert list(build_networks(config, torch.device("meta")).named()) == roles


def test_every_shipped_config_loads():
    for path in sorted(CONFIGS.glob("*.yaml")):
        load_experiment(path)


def test_round_trip_through_a_mapping():
    config = load_experiment(
        CONFIGS / "tiny.yaml", ["model.transformer.layers=5", "model.transformer.tapped_layers=[2,3,4,5]"]
    )
    assert experiment_from_mapping(to_mapping(config)) == config
    assert config.model.transformer.layers == 5


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["method=unet"], "one of mstkd, magms, baseline"),
        (["patch=[32, 32, 48]"], "multiples of 32"),
        (["patch=[32, 32]"], "3 entries"),
        (["optimiser.lr=1"], "Unknown section"),
        (["model.widths=[1, 2]"], "Unknown setting"),
        (["model.transformer.tapped_layers=[1, 2, 3]"], "tapped_layers"),
        (["model.discriminator_widths=[8, 16, 32]"], "at least 64"),
        (["model.groups=3"], "multiple of groups"),
    ],
)
def test_invalid_experiments_say_what_to_fix(overrides, message):
    with pytest.raises(MSTKDError, match=message):
        load_experiment(CONFIGS / "tiny.yaml", overrides)


def test_magms_patch_needs_only_its_own_stride():
    config = load_experiment(CONFIGS / "magms.yaml", ["patch=[80, 80, 80]"])
    assert config.patch == (80, 80, 80)
    with pytest.raises(MSTKDError, match="multiples of 8"):
        load_experiment(CONFIGS / "magms.yaml", ["patch=[84, 80, 80]"])
