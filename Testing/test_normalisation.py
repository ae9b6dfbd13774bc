"""Intensity normalisation from the sequences present, and label <-> channel encoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mstkd.conventions import label_convention
from mstkd.errors import MSTKDError
from mstkd.intensity import brain_mask, normalise_sequences
from mstkd.prediction.labelrule import ARGMAX, probabilities_to_labels
from mstkd.targets import labels_to_channels


def test_mask_and_zscore_use_only_the_present_sequences():
    rng = np.random.default_rng(0)
    volumes = np.zeros((4, 6, 6, 6), dtype=np.float32)
    volumes[0, 1:5, 1:5, 1:5] = rng.uniform(100, 200, (4, 4, 4))  # flair: the brain
    volumes[3, 0:6, 0:6, 0:6] = rng.uniform(10, 20, (6, 6, 6))  # t2 covers more: would widen the mask
    present = (True, False, False, False)
    mask = brain_mask(volumes, present)
    assert mask.sum() == 64
    out = normalise_sequences(volumes, present)
    assert np.allclose(out[0][mask].mean(), 0, atol=1e-5) and np.allclose(out[0][mask].std(), 1, atol=1e-4)
    assert not out[0][~mask].any() and not out[1:].any(), "outside the mask and absent channels are zero"
    with pytest.raises(MSTKDError, match="At least one"):
        normalise_sequences(volumes, (False,) * 4)


def test_a_sequence_is_zero_where_it_does_not_cover_the_brain():
    rng = np.random.default_rng(1)
    volumes = np.zeros((4, 6, 6, 6), dtype=np.float32)
    volumes[2, 1:5, 1:5, 1:5] = rng.uniform(100, 200, (4, 4, 4))  # t1ce: the whole brain
    volumes[0, 1:5, 1:5, 1:3] = rng.uniform(300, 400, (4, 4, 2))  # flair: a slab over half of it
    out = normalise_sequences(volumes, (True, False, True, False))
    covered = volumes[0] != 0
    flair = out[0][covered]
    assert np.allclose(flair.mean(), 0, atol=1e-5) and np.allclose(flair.std(), 1, atol=1e-4)
    assert not out[0][~covered].any(), "beyond its slab FLAIR reads as missing, not as darker than the brain"
    brain = volumes[2] != 0
    assert np.allclose(out[2][brain].mean(), 0, atol=1e-5) and not out[2][~brain].any()


@pytest.mark.parametrize("name", ["brats2021", "brats2023"])
def test_labels_and_channels_round_trip(name):
    convention = label_convention(name)
    values = sorted(convention.value_set())
    labels = torch.tensor(values * 3, dtype=torch.uint8).reshape(1, 1, 3, len(values))
    channels = labels_to_channels(labels, convention)
    assert channels.shape == (1, 4, 1, 3, len(values))
    assert torch.all(channels.sum(dim=1) == 1)
    assert torch.equal(probabilities_to_labels(channels, convention, ARGMAX), labels)


def test_resection_cavity_is_background_for_the_model():
    channels = labels_to_channels(torch.tensor([[[4]]]), label_convention("brats2024"))
    assert channels[:, 0, 0, 0].tolist() == [0, 0, 0, 1]
