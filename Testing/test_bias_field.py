"""Bias-field correction (N4): a coil's smooth field is divided out, a large oedema is not, and a
model that asks for it gets it in training, evaluation and inference."""

from __future__ import annotations

import numpy as np
import pytest

from mstkd.bias_field import N4, NONE, correct_bias
from mstkd.checkpoint import load_checkpoint, save_checkpoint
from mstkd.conventions import label_convention
from mstkd.errors import MSTKDError
from mstkd.experiment.sections import DataConfig
from mstkd.imageio import image_to_array
from mstkd.inference.predictor import Predictor
from mstkd.phantom import generate_case
from mstkd.preprocess import prepare_exam
from mstkd.training.data import RAW, cached_transform, case_record

SHAPE = (120, 120, 78)  # 2 mm voxels, as the demo model's grid
SPACING = (2.0, 2.0, 2.0)
OEDEMA = 2


@pytest.fixture(scope="module")
def case():
    return generate_case(5, 1, SHAPE)


@pytest.fixture(scope="module")
def flair(case):
    return image_to_array(case.images["flair"]).astype(np.float32)


@pytest.fixture(scope="module")
def labels(case):
    return image_to_array(case.labels)


def coil_field(shape) -> np.ndarray:
    """A smooth multiplicative field: brighter to one side and at the top, 0.55 to 1.7 over the head."""
    i, j, k = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    return np.exp(0.4 * i + 0.2 * np.cos(np.pi * k) + 0.1 * j).astype(np.float32)


def log_spread(values: np.ndarray) -> float:
    return float(np.std(np.log(values)))


def test_a_coils_field_is_divided_out(flair):
    brain = flair != 0
    biased = flair * coil_field(flair.shape)
    corrected = correct_bias(np.stack([biased, flair]), SPACING, N4)
    # Up to a constant, the corrected biased image should be the corrected clean one.
    residual = corrected[0][brain] / corrected[1][brain]
    applied = biased[brain] / flair[brain]
    assert log_spread(residual) < 0.5 * log_spread(applied), "most of the field is removed"
    assert not corrected[:, ~brain].any(), "0 (outside the brain) stays 0"


def test_a_large_oedema_keeps_its_contrast(flair, labels):
    oedema = labels == OEDEMA
    assert oedema.sum() * 8e-3 > 50, "the case has a large oedema (over 50 mL)"
    normal = (flair != 0) & (labels == 0)

    def contrast(image):
        return np.median(image[oedema]) / np.median(image[normal])

    corrected = correct_bias(flair[None], SPACING, N4)[0]
    assert contrast(corrected) == pytest.approx(contrast(flair), rel=0.05)


def test_none_leaves_the_volumes_and_empty_channels_stay_empty(flair):
    volumes = np.stack([flair, np.zeros_like(flair)])
    assert correct_bias(volumes, SPACING, NONE) is volumes
    corrected = correct_bias(volumes, SPACING, N4)
    assert not corrected[1].any(), "an absent sequence stays absent"
    assert np.array_equal(volumes[0], flair), "the input is not changed in place"


def test_an_unknown_correction_is_refused(flair):
    with pytest.raises(MSTKDError, match="choose one of none, n4"):
        correct_bias(flair[None], SPACING, "n3")
    with pytest.raises(MSTKDError, match="data.bias_correction must be one of none, n4"):
        DataConfig(bias_correction="N4 please")


def test_training_loads_cases_bias_corrected(phantom_root):
    from mstkd.cases import discover_cases

    record = case_record(discover_cases(phantom_root).cases[0])
    labels = label_convention("brats2021")
    plain = cached_transform(labels, crop_to_brain=False)(record)[RAW]
    corrected = cached_transform(labels, crop_to_brain=False, bias_correction=N4)(record)[RAW]
    assert np.array_equal(plain != 0, corrected != 0), "the brain is where it was"
    assert not np.allclose(plain, corrected), "the field is divided out"


def test_a_model_that_asks_for_n4_gets_it_at_inference(tiny_model_file, case, tmp_path):
    checkpoint = load_checkpoint(tiny_model_file)
    metadata = {k: v for k, v in checkpoint.metadata.items() if not k.endswith("sha256")}
    metadata["experiment"]["data"]["bias_correction"] = N4
    model = tmp_path / "n4.safetensors"
    save_checkpoint(model, checkpoint.state_dict, metadata)

    images = {"flair": case.images["flair"], "t2": case.images["t2"]}
    result = Predictor(model, device="cpu").segment(images)
    assert any("bias field of flair, t2 divided out (n4" in step for step in result.steps)
    plain = prepare_exam(images, SPACING)
    assert not any("bias field" in step for step in plain.steps), "a model without it is not corrected"
