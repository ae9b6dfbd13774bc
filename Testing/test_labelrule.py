"""Label rules on hand-made probabilities, the small-ET clean-up, and the rule a model file records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mstkd.conventions import label_convention, region_masks
from mstkd.errors import MSTKDError
from mstkd.experiment import load_experiment
from mstkd.experiment.sections import OutputConfig
from mstkd.inference.model_file import load_trained_model
from mstkd.prediction.labelrule import (
    ARGMAX,
    EXCLUSIVE,
    INDEPENDENT,
    probabilities_to_labels,
    remove_small_et,
)
from mstkd.typed_config import from_mapping

CONFIGS_DIR = Path(__file__).resolve().parents[1] / "Training" / "configs"
BRATS = label_convention("brats2021")  # NCR 1, ED 2, ET 4
# Five voxels; channels NCR, ED, ET, background (independent sigmoids, as MST-KDNet's).
VOXELS = {
    "nothing on": [0.2, 0.3, 0.1, 0.9],
    "ED and ET on, ED stronger": [0.1, 0.9, 0.6, 0.2],
    "NCR and ED on, ED stronger": [0.7, 0.8, 0.2, 0.1],
    "only ET on, background stronger": [0.1, 0.2, 0.6, 0.95],
    "all three below 0.5, background weak": [0.4, 0.45, 0.3, 0.1],
}
EXPECTED = {
    # the most probable tumour channel, where it exceeds 0.5
    EXCLUSIVE: [0, 2, 2, 4, 0],
    # each channel on its own: ET before NCR before ED
    INDEPENDENT: [0, 4, 1, 4, 0],
    # all four channels compete
    ARGMAX: [0, 2, 2, 0, 2],
}


def probabilities():
    values = torch.tensor(list(VOXELS.values()))  # (5 voxels, 4 channels)
    return values.T.reshape(4, 5, 1, 1)


@pytest.mark.parametrize("rule", sorted(EXPECTED))
def test_each_rule_on_a_hand_made_probability_volume(rule):
    labels = probabilities_to_labels(probabilities(), BRATS, rule)
    assert labels.dtype == torch.uint8 and labels.shape == (5, 1, 1)
    assert labels.flatten().tolist() == EXPECTED[rule]


def test_the_independent_rule_keeps_the_references_regions_exactly():
    p = probabilities().numpy()
    regions = region_masks(probabilities_to_labels(probabilities(), BRATS, INDEPENDENT).numpy(), BRATS)
    on = p[:3] > 0.5
    assert np.array_equal(regions["WT"], on.any(axis=0))
    assert np.array_equal(regions["TC"], on[0] | on[2])
    assert np.array_equal(regions["ET"], on[2])


def test_the_threshold_is_a_setting():
    labels = probabilities_to_labels(probabilities(), BRATS, EXCLUSIVE, threshold=0.42)
    assert labels.flatten().tolist() == [0, 2, 2, 4, 2]


def test_small_enhancing_tumour_becomes_necrosis_per_case_or_per_component():
    labels = np.zeros((20, 20, 20), dtype=np.uint8)
    labels[1:4, 1:4, 1:4] = 4  # 27 voxels
    labels[10:15, 10:15, 10:15] = 4  # 125 voxels
    labels[16:18, 16:18, 16:18] = 2
    per_case = remove_small_et(labels, BRATS, 200, "case")
    assert (per_case == 4).sum() == 0 and (per_case == 1).sum() == 152
    assert np.array_equal(per_case > 0, labels > 0), "TC and WT are kept"
    assert np.array_equal(remove_small_et(labels, BRATS, 100, "case"), labels)
    per_component = remove_small_et(labels, BRATS, 100, "component")
    assert (per_component == 4).sum() == 125 and (per_component == 1).sum() == 27
    assert np.array_equal(remove_small_et(labels, BRATS, 0), labels)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"label_rule": "softmax"}, "exclusive, independent, argmax"),
        ({"threshold": 1.0}, "strictly between"),
        ({"et_min_voxels": -1}, "0 \\(off\\)"),
        ({"et_min_voxels_per": "lesion"}, "case, component"),
        ({"blending": "linear"}, "gaussian, constant"),
        ({"mirror_axes": [0, 0]}, "distinct spatial axes"),
        ({"mirror_axes": [3]}, "among 0, 1 and 2"),
    ],
)
def test_bad_output_settings_are_refused(data, message):
    with pytest.raises(MSTKDError, match=message):
        from_mapping(OutputConfig, data, "output")


def test_each_method_has_its_own_rule_and_a_config_may_choose_another():
    assert load_experiment(CONFIGS_DIR / "tiny.yaml").output.rule == EXCLUSIVE
    assert load_experiment(CONFIGS_DIR / "magms.yaml").output.rule == ARGMAX
    chosen = load_experiment(CONFIGS_DIR / "tiny.yaml", ["output.label_rule=independent"])
    assert chosen.output.rule == INDEPENDENT


def test_a_model_file_records_its_rule_and_inference_uses_it(tiny_model_file):
    model = load_trained_model(tiny_model_file, torch.device("cpu"))
    assert model.metadata["experiment"]["output"]["label_rule"] == EXCLUSIVE
    assert model.output.rule == EXCLUSIVE
    overridden = model.with_output(label_rule=INDEPENDENT, et_min_voxels=500)
    assert (overridden.output.rule, overridden.output.et_min_voxels) == (INDEPENDENT, 500)
    assert model.output.rule == EXCLUSIVE, "the loaded model itself is unchanged"
