"""Each loss on its own, with small synthetic tensors of the networks' shapes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss
from torch import nn

from mstkd.losses.adversarial import discriminator_loss, generator_loss
from mstkd.losses.logit_kd import probability_consistency_loss, rampup_weight, standardised_logit_kl
from mstkd.losses.segmentation import dice_ce_loss, soft_dice_loss
from mstkd.losses.style import content_loss, cross_gram, style_matching_loss
from mstkd.losses.transformer_kd import attention_extreme_value_loss, transformer_feature_loss

SHAPE = (2, 4, 8, 8, 8)


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def one_hot(shape=SHAPE):
    labels = torch.randint(0, shape[1], (shape[0], *shape[2:]))
    return F.one_hot(labels, shape[1]).movedim(-1, 1).float()


def attention(layers=4, batch=2, heads=2, tokens=8):
    return [torch.randn(batch, heads, tokens, tokens).softmax(-1) for _ in range(layers)]


def test_soft_dice_is_the_references_per_channel_sum():
    p, t = torch.rand(SHAPE), one_hot()
    expected = sum(
        1 - 2 * (p[:, c] * t[:, c]).sum() / ((p[:, c] ** 2).sum() + (t[:, c] ** 2).sum() + 1e-7)
        for c in range(SHAPE[1])
    )
    assert torch.allclose(soft_dice_loss(p, t), expected)
    assert soft_dice_loss(t, t) < 1e-6


def test_dice_ce_on_one_hot_equals_monai_on_label_indices():
    logits, t = torch.randn(SHAPE), one_hot()
    reference = DiceCELoss(to_onehot_y=True, softmax=True)(logits, t.argmax(1, keepdim=True))
    assert torch.allclose(dice_ce_loss(logits, t), reference)


@pytest.mark.parametrize(
    "loss",
    [
        lambda t, s: transformer_feature_loss(t, s),
        lambda t, s: attention_extreme_value_loss([x.softmax(-1) for x in t], [x.softmax(-1) for x in s]),
        lambda t, s: style_matching_loss(t[:3], s[:3]),
        lambda t, s: content_loss(t[0], s[0]),
        lambda t, s: probability_consistency_loss(t[0].sigmoid(), s[0].sigmoid()),
        lambda t, s: standardised_logit_kl(t[0], s[0], temperature=7.0),
    ],
    ids=["mstkd_features", "mstkd_attention", "gsme_matching", "content", "dmld_probability", "dmld_kl"],
)
def test_distillation_is_zero_for_equal_outputs_and_positive_otherwise(loss):
    teacher = [torch.randn(2, 4, 4, 4, 4) for _ in range(4)]
    student = [torch.randn(2, 4, 4, 4, 4) for _ in range(4)]
    assert loss(teacher, [x.clone() for x in teacher]).abs() < 1e-6
    assert loss(teacher, student) > 1e-6


def test_attention_term_is_tokens_to_the_fourth_times_the_references():
    teacher, student = attention(tokens=8), attention(tokens=8)

    def reference(maps):
        stacked = torch.stack(maps)
        extremes = (stacked.max(0).values, stacked.min(0).values, stacked.mean(0))
        return [m * e for e in extremes for m in maps]

    raw = sum(F.mse_loss(t, s) for t, s in zip(reference(teacher), reference(student)))
    assert torch.allclose(attention_extreme_value_loss(teacher, student), raw * 8**4)


def test_probability_consistency_ignores_the_background_channel():
    teacher, student = torch.rand(SHAPE), torch.rand(SHAPE)
    changed = student.clone()
    changed[:, 3] = torch.rand_like(changed[:, 3])
    expected = sum(F.mse_loss(teacher[:, c], student[:, c]) for c in range(3))
    assert torch.allclose(probability_consistency_loss(teacher, student), expected)
    assert torch.allclose(probability_consistency_loss(teacher, changed), expected)


@pytest.mark.parametrize(("epoch", "weight"), [(0, 0.0674), (10, 2.8650), (20, 10.0), (50, 10.0)])
def test_rampup_weight(epoch, weight):
    assert round(rampup_weight(epoch, maximum=10.0, length=20.0), 4) == weight
    assert math.isclose(rampup_weight(epoch, 10.0, 20.0), 10 * math.exp(-5 * (1 - min(epoch, 20) / 20) ** 2))


def test_rampup_accepts_fractional_epochs():
    weights = [rampup_weight(step / 7, 10.0, 20.0) for step in range(200)]
    assert weights == sorted(weights) and weights[-1] == 10.0


def test_standardised_kl_sees_only_each_voxels_class_pattern():
    teacher, student = torch.randn(SHAPE), torch.randn(SHAPE)
    loss = standardised_logit_kl(teacher, student, 7.0)
    shift = torch.randn(SHAPE[0], 1, *SHAPE[2:])  # one constant per voxel, all classes
    scale = torch.rand(SHAPE[0], 1, *SHAPE[2:]) + 0.5  # one positive factor per voxel
    assert torch.allclose(standardised_logit_kl(teacher + shift, student - shift, 7.0), loss, rtol=1e-5)
    assert torch.allclose(standardised_logit_kl(teacher * scale, student * 3.0, 7.0), loss, rtol=1e-4)
    assert standardised_logit_kl(teacher, 3.0 * teacher + shift, 7.0) < 1e-6
    assert standardised_logit_kl(teacher, -teacher, 7.0) > 1e-3  # a sign flip is not a rescaling


def test_reference_standardisation_axis_is_a_different_loss():
    teacher, student = torch.randn(SHAPE), torch.randn(SHAPE)
    shift = torch.randn(SHAPE[0], 1, *SHAPE[2:])
    reference = standardised_logit_kl(teacher, student, 7.0, reference_axis=True)
    assert not torch.allclose(reference, standardised_logit_kl(teacher, student, 7.0))
    assert not torch.allclose(standardised_logit_kl(teacher + shift, student, 7.0, True), reference)


def test_cross_gram_for_one_sample_is_the_references_mix_matrix():
    later, earlier = torch.randn(1, 4, 3, 3, 3), torch.randn(1, 4, 3, 3, 3)
    expected = later.view(4, -1) @ earlier.view(4, -1).t() / later.numel()
    assert torch.allclose(cross_gram(later, earlier)[0], expected)


def test_style_matching_pairs_each_feature_with_the_previous_one_cyclically():
    teacher = [torch.randn(2, 4, 3, 3, 3) for _ in range(3)]
    student = [torch.randn(2, 4, 3, 3, 3) for _ in range(3)]
    expected = sum(
        (cross_gram(teacher[i], teacher[j]) - cross_gram(student[i], student[j])).square().sum() / 2
        for i, j in ((0, 2), (1, 0), (2, 1))
    )
    assert torch.allclose(style_matching_loss(teacher, student), expected)


def tiny_discriminator(channels=4):
    return nn.Sequential(nn.Conv3d(channels, 8, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv3d(8, 1, 2), nn.Flatten())


def test_generator_loss_reaches_the_student_not_the_discriminator():
    discriminator = tiny_discriminator()
    style = torch.randn(2, 4, 4, 4, 4, requires_grad=True)
    generator_loss(discriminator, style).backward()
    assert style.grad is not None and style.grad.abs().sum() > 0
    assert all(p.grad is None for p in discriminator.parameters())


def test_discriminator_loss_trains_the_discriminator_only():
    discriminator = tiny_discriminator()
    teacher = torch.randn(2, 4, 4, 4, 4, requires_grad=True)
    student = torch.randn(2, 4, 4, 4, 4, requires_grad=True)
    discriminator_loss(discriminator, teacher, student).backward()
    assert teacher.grad is None and student.grad is None
    assert all(p.grad is not None for p in discriminator.parameters())


def test_discriminator_and_generator_push_in_opposite_directions():
    discriminator = tiny_discriminator()
    teacher, student = torch.randn(2, 4, 4, 4, 4) + 1.0, torch.randn(2, 4, 4, 4, 4) - 1.0
    d_before, g_before = (
        discriminator_loss(discriminator, teacher, student),
        generator_loss(discriminator, student),
    )
    optimiser = torch.optim.SGD(discriminator.parameters(), lr=0.1)
    optimiser.zero_grad()
    d_before.backward()
    optimiser.step()
    with torch.no_grad():
        assert discriminator_loss(discriminator, teacher, student) < d_before
        assert generator_loss(discriminator, student) > g_before
