"""MAG-MS: reference size, fusion over the sequences present, per-sequence outputs, input errors."""

from __future__ import annotations

import pytest
import torch

from mstkd.conventions import SEQUENCES, make_subset
from mstkd.errors import MSTKDError
from mstkd.models.config import MAGMSConfig
from mstkd.models.magms import MAGMSNet, fuse


def test_reference_size_is_about_6_68_million_parameters():
    with torch.device("meta"):
        network = MAGMSNet(MAGMSConfig())
    assert sum(p.numel() for p in network.parameters()) == pytest.approx(6.68e6, rel=0.02)
    assert sorted(network.encoders) == sorted(SEQUENCES)


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return MAGMSNet(MAGMSConfig(widths=(4, 8, 16)))


def test_shapes_and_per_sequence_outputs(small):
    x = torch.randn(2, 4, 16, 16, 24)
    output = small(x, make_subset(["flair", "t2"]), per_modality=True)
    assert output.logits.shape == (2, 4, 16, 16, 24)
    assert [tuple(f.shape) for f in output.features] == [
        (2, 4, 16, 16, 24),
        (2, 8, 8, 8, 12),
        (2, 16, 4, 4, 6),
    ]
    assert sorted(output.modality_logits) == sorted(output.modality_features) == ["flair", "t2"]
    assert output.modality_logits["t2"].shape == output.logits.shape
    inference = small(x, make_subset(["flair", "t2"]))
    assert inference.modality_logits == {} and inference.modality_features == {}


def test_fusion_of_one_sequence_is_that_sequences_features(small):
    x = torch.randn(1, 4, 16, 16, 16)
    output = small(x, [False, False, True, False], per_modality=True)
    for fused, own in zip(output.features, output.modality_features["t1ce"]):
        assert torch.equal(fused, own)
    assert torch.equal(output.logits, output.modality_logits["t1ce"])


def test_fusion_is_the_mean_of_the_sequences_present(small):
    x = torch.randn(1, 4, 16, 16, 16)
    output = small(x, [True, True, False, False], per_modality=True)
    expected = fuse([output.modality_features["flair"], output.modality_features["t1"]])
    for fused, mean, a, b in zip(
        output.features, expected, output.modality_features["flair"], output.modality_features["t1"]
    ):
        assert torch.equal(fused, mean)
        assert torch.allclose(fused, (a + b) / 2)


def test_absent_sequences_are_dropped_not_read(small):
    x = torch.randn(1, 4, 16, 16, 16)
    present = [True, False, True, True]
    before = small(x, present).logits
    x[:, 1] = float("nan")
    assert torch.equal(small(x, present).logits, before)
    with pytest.raises(MSTKDError, match="NaN"):
        small(x)


@pytest.mark.parametrize(
    ("shape", "present", "message"),
    [
        ((1, 4, 16, 16, 18), None, "multiples of 4"),
        ((1, 1, 16, 16, 16), None, r"\(batch, 4, D, H, W\)"),
        ((1, 4, 16, 16, 16), [True, False], "4 flags"),
        ((1, 4, 16, 16, 16), [False] * 4, "at least one"),
    ],
)
def test_bad_inputs_say_what_is_expected(small, shape, present, message):
    with pytest.raises(MSTKDError, match=message):
        small(torch.zeros(shape), present)
