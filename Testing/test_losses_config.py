"""LossConfig: the paper's defaults, strict loading, and the ablation configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mstkd.errors import MSTKDError
from mstkd.experiment import load_experiment
from mstkd.losses.config import LossConfig
from mstkd.typed_config import from_mapping, to_mapping

CONFIGS = Path(__file__).resolve().parents[1] / "Training" / "configs"
ABLATIONS = {
    "ablation_no_mstkd.yaml": "mstkd_distillation",
    "ablation_no_gsme.yaml": "gsme",
    "ablation_no_dmld.yaml": "dmld",
    "ablation_no_slkd.yaml": "dmld_kl",
}


def test_defaults_are_the_papers():
    config = LossConfig()
    assert (config.teacher_segmentation_weight, config.student_segmentation_weight) == (0.4, 0.6)
    assert (config.mstkd_feature_weight, config.content_weight) == (0.2, 0.2)
    assert (config.dmld_probability_weight, config.dmld_rampup_epochs, config.dmld_temperature) == (10, 20, 7)
    assert config.gsme_adversarial_weight == 0.0002
    assert (config.magms_kl_weight, config.magms_feature_weight, config.magms_temperature) == (1, 1, 1)
    assert all((config.mstkd_distillation, config.gsme, config.dmld, config.content))
    assert not (config.dmld_reference_standardisation or config.magms_detach_fused_target)


def test_dmld_detaches_the_teacher_by_default_but_not_in_the_papers_recipe():
    assert LossConfig().dmld_detach_teacher
    assert not any((LossConfig().mstkd_detach_teacher, LossConfig().content_detach_teacher))
    assert not load_experiment(CONFIGS / "paper.yaml").loss.dmld_detach_teacher


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"gsme_matching_weight": -1}, "zero or positive"),
        ({"dmld_temperature": 0}, "positive"),
        ({"gsme_weight": 1}, "Unknown setting"),
        ({"dmld": "no"}, "true or false"),
    ],
)
def test_bad_loss_settings_are_refused(data, message):
    with pytest.raises(MSTKDError, match=message):
        from_mapping(LossConfig, data, "loss")


def flattened(data, prefix=""):
    """A nested config as {"section.key": value}."""
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(flattened(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@pytest.mark.parametrize(("name", "switch"), ABLATIONS.items())
def test_each_ablation_switches_off_exactly_one_thing_of_the_paper_config(name, switch):
    assert yaml.safe_load((CONFIGS / name).read_text())["extends"] == "paper.yaml"
    paper, ablation = (flattened(to_mapping(load_experiment(CONFIGS / n))) for n in ("paper.yaml", name))
    differences = {key: (paper[key], ablation[key]) for key in paper if ablation[key] != paper[key]}
    assert differences == {f"loss.{switch}": (True, False)}
