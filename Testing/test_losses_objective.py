"""The objectives: term sets, ablation switches, totals, and where gradients go."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mstkd.losses.config import LossConfig
from mstkd.losses.objective import (
    BaselineObjective,
    MAGMSObjective,
    MSTKDObjective,
    discriminator_objective,
)
from mstkd.losses.segmentation import soft_dice_loss
from mstkd.models.config import MAGMSConfig, MSTKDNetConfig, TransformerConfig
from mstkd.models.discriminator import StyleDiscriminator
from mstkd.models.magms import MAGMSNet
from mstkd.models.mstkdnet import MSTKDNet
from mstkd.models.outputs import MAGMSOutput, MSTKDNetOutput

STYLE_CHANNELS = 4
DISTILLATION_TERMS = {"mstkd_features", "mstkd_attention", "dmld_probability", "dmld_logit_kl", "content"}
ALL_TERMS = DISTILLATION_TERMS | {
    "segmentation_teacher",
    "segmentation_student",
    "gsme_matching",
    "gsme_adversarial",
}
# The config weight behind each term, and the network input ("leaf") it must send gradients to.
WEIGHTS = {
    "segmentation_teacher": "teacher_segmentation_weight",
    "segmentation_student": "student_segmentation_weight",
    "mstkd_features": "mstkd_feature_weight",
    "mstkd_attention": "mstkd_attention_weight",
    "dmld_probability": "dmld_probability_weight",
    "dmld_logit_kl": "dmld_kl_weight",
    "content": "content_weight",
    "gsme_matching": "gsme_matching_weight",
    "gsme_adversarial": "gsme_adversarial_weight",
}
LEAF = {
    "segmentation_teacher": "logits",
    "segmentation_student": "logits",
    "mstkd_features": "transformer_features",
    "mstkd_attention": "attention_scores",
    "dmld_probability": "logits",
    "dmld_logit_kl": "logits",
    "content": "content",
    "gsme_matching": "style_features",
    "gsme_adversarial": "style_features",
}


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def leaves(batch=2):
    """Random network outputs as leaf tensors, in the shapes an MST-KDNet returns."""
    return {
        "logits": torch.randn(batch, 4, 8, 8, 8),
        "transformer_features": [torch.randn(batch, c, 4, 4, 4) for c in (4, 8, 16, 32)],
        "attention_scores": [torch.randn(batch, 2, 8, 8) for _ in range(4)],
        "content": torch.randn(batch, STYLE_CHANNELS, 4, 4, 4),
        "style_features": [torch.randn(batch, STYLE_CHANNELS, 4, 4, 4) for _ in range(3)],
    }


def with_grad(tensors):
    return {
        k: [t.clone().requires_grad_() for t in v] if isinstance(v, list) else v.clone().requires_grad_()
        for k, v in tensors.items()
    }


def output(leaf):
    return MSTKDNetOutput(
        logits=leaf["logits"],
        probabilities=leaf["logits"].sigmoid(),
        transformer_features=tuple(leaf["transformer_features"]),
        attention_maps=tuple(s.softmax(-1) for s in leaf["attention_scores"]),
        content=leaf["content"],
        style_features=tuple(leaf["style_features"]),
    )


def one_hot(side=8, batch=2):
    labels = torch.randint(0, 4, (batch, side, side, side))
    return F.one_hot(labels, 4).movedim(-1, 1).float()


def discriminator():
    return nn.Sequential(
        nn.Conv3d(STYLE_CHANNELS, 8, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv3d(8, 1, 2), nn.Flatten()
    )


def grad_size(tensors):
    tensors = tensors if isinstance(tensors, list) else [tensors]
    return sum(float(t.grad.abs().sum()) for t in tensors if t.grad is not None)


def check_total(result):
    expected = sum(result.weights[k] * result.terms[k] for k in result.terms)
    assert torch.allclose(result.total.detach(), expected)


def test_full_objective_terms_and_total():
    result = MSTKDObjective(LossConfig())(
        output(leaves()), output(leaves()), one_hot(), 50.0, discriminator()
    )
    assert set(result.terms) == ALL_TERMS
    assert result.weights["dmld_probability"] == 10.0
    assert all(not t.requires_grad for t in result.terms.values())
    check_total(result)


def test_distillation_terms_are_zero_for_identical_networks():
    same = leaves()
    result = MSTKDObjective(LossConfig())(output(same), output(same), one_hot(), 5.0, discriminator())
    assert all(result.terms[name].abs() < 1e-6 for name in DISTILLATION_TERMS | {"gsme_matching"})
    different = MSTKDObjective(LossConfig())(output(same), output(leaves()), one_hot(), 5.0, discriminator())
    assert all(different.terms[name] > 1e-6 for name in DISTILLATION_TERMS | {"gsme_matching"})


# Fields a switched-off component must not read; None makes any read fail.
UNREAD = {
    "mstkd_distillation": (
        {"transformer_features": None, "attention_maps": None},
        {"mstkd_features", "mstkd_attention"},
    ),
    "gsme": ({"style_features": None}, {"gsme_matching", "gsme_adversarial"}),
    "dmld": ({"logits": None}, {"dmld_probability", "dmld_logit_kl"}),
    "dmld_kl": ({"logits": None}, {"dmld_logit_kl"}),
    "content": ({"content": None}, {"content"}),
}


@pytest.mark.parametrize("switch", UNREAD)
def test_each_switch_removes_exactly_its_terms_without_computing_them(switch):
    unread, removed = UNREAD[switch]
    teacher = dataclasses.replace(output(leaves()), **unread)
    student = dataclasses.replace(output(leaves()), **unread)
    critic = None if switch == "gsme" else discriminator()
    result = MSTKDObjective(LossConfig(**{switch: False}))(teacher, student, one_hot(), 3.5, critic)
    assert set(result.terms) == ALL_TERMS - removed
    check_total(result)


def test_gsme_needs_the_discriminator():
    with pytest.raises(ValueError, match="discriminator"):
        MSTKDObjective(LossConfig())(output(leaves()), output(leaves()), one_hot(), 0.0)


@pytest.mark.parametrize("term", sorted(ALL_TERMS))
def test_gradients_reach_the_student_always_and_the_teacher_where_co_trained(term):
    only = {field: 0.0 for field in WEIGHTS.values()}
    only[WEIGHTS[term]] = 1.0
    co_trained = LossConfig(**only, dmld_detach_teacher=False)
    teacher, student, critic = with_grad(leaves()), with_grad(leaves()), discriminator()
    result = MSTKDObjective(co_trained)(output(teacher), output(student), one_hot(), 50.0, critic)
    result.total.backward()

    teacher_trained = term not in ("segmentation_student", "gsme_adversarial")
    student_trained = term != "segmentation_teacher"
    assert (grad_size(student[LEAF[term]]) > 0) == student_trained
    assert (grad_size(teacher[LEAF[term]]) > 0) == teacher_trained
    untouched = [name for name in LEAF if LEAF[name] != LEAF[term]]
    assert all(grad_size(teacher[LEAF[n]]) == 0 and grad_size(student[LEAF[n]]) == 0 for n in untouched)
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in critic.parameters())


# Each distillation term's detach-the-teacher switch.
DETACH = {
    "mstkd_features": "mstkd_detach_teacher",
    "mstkd_attention": "mstkd_detach_teacher",
    "dmld_probability": "dmld_detach_teacher",
    "dmld_logit_kl": "dmld_detach_teacher",
    "content": "content_detach_teacher",
    "gsme_matching": "gsme_detach_teacher",
}


@pytest.mark.parametrize("term", sorted(DETACH))
def test_detaching_the_teacher_stops_a_terms_gradients_at_the_teacher_only(term):
    only = {field: 0.0 for field in WEIGHTS.values()}
    only[WEIGHTS[term]] = 1.0
    config = LossConfig(**only, **{DETACH[term]: True})
    teacher, student = with_grad(leaves()), with_grad(leaves())
    result = MSTKDObjective(config)(output(teacher), output(student), one_hot(), 50.0, discriminator())
    teacher_leaf, student_leaf = teacher[LEAF[term]], student[LEAF[term]]
    tensors = (
        [*teacher_leaf, *student_leaf] if isinstance(teacher_leaf, list) else [teacher_leaf, student_leaf]
    )
    gradients = torch.autograd.grad(result.total, tensors, allow_unused=True)
    half = len(gradients) // 2
    assert all(g is None or g.abs().sum() == 0 for g in gradients[:half]), "the teacher gets no gradient"
    assert sum(float(g.abs().sum()) for g in gradients[half:] if g is not None) > 0, "the student does"

    attached = MSTKDObjective(dataclasses.replace(config, **{DETACH[term]: False}))(
        output(teacher), output(student), one_hot(), 50.0, discriminator()
    )
    assert torch.allclose(attached.terms[term], result.terms[term]), "detaching leaves the value alone"


def test_the_logit_kl_ramps_up_on_its_own_schedule():
    config = LossConfig(dmld_kl_weight=0.25, dmld_kl_rampup_epochs=10.0, dmld_rampup_epochs=0.0, gsme=False)
    early = MSTKDObjective(config)(output(leaves()), output(leaves()), one_hot(), 0.0)
    late = MSTKDObjective(config)(output(leaves()), output(leaves()), one_hot(), 10.0)
    assert early.weights["dmld_logit_kl"] == pytest.approx(0.25 * math.exp(-5.0))
    assert late.weights["dmld_logit_kl"] == 0.25
    assert early.weights["dmld_probability"] == late.weights["dmld_probability"] == 10.0


def test_student_segmentation_uses_the_students_own_background():
    # Regression test: the reference scored the student's background with the teacher's.
    teacher, student, target = leaves(), with_grad(leaves()), one_hot()
    objective = MSTKDObjective(LossConfig(gsme=False))
    result = objective(output(teacher), output(student), target, 0.0)
    teacher["logits"][:, 3] = torch.randn_like(teacher["logits"][:, 3])
    changed = objective(output(teacher), output(student), target, 0.0)
    assert torch.equal(result.terms["segmentation_student"], changed.terms["segmentation_student"])

    soft_dice_loss(output(student).probabilities, target).backward()
    assert student["logits"].grad[:, 3].abs().sum() > 0


def test_discriminator_objective_trains_only_the_discriminator():
    teacher, student, critic = with_grad(leaves()), with_grad(leaves()), discriminator()
    discriminator_objective(critic, output(teacher), output(student)).backward()
    assert grad_size(teacher["style_features"]) == 0 and grad_size(student["style_features"]) == 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in critic.parameters())


def test_objective_is_float32_under_bf16_autocast():
    teacher, student = leaves(), leaves()
    bf16 = {k: [t.bfloat16() for t in v] if isinstance(v, list) else v.bfloat16() for k, v in student.items()}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        result = MSTKDObjective(LossConfig())(output(teacher), output(bf16), one_hot(), 7.0, discriminator())
    assert result.total.dtype == torch.float32 and torch.isfinite(result.total)


def test_baseline_is_the_students_dice_alone():
    student, target = output(leaves()), one_hot()
    result = BaselineObjective()(student, target)
    assert result.weights == {"segmentation_student": 1.0}
    assert torch.allclose(result.total, soft_dice_loss(student.probabilities, target))


def magms_output(fused_logits, fused_features, modality_logits, modality_features):
    sequences = ("flair", "t1", "t1ce", "t2")
    return MAGMSOutput(
        logits=fused_logits,
        features=tuple(fused_features),
        modality_logits=dict(zip(sequences, modality_logits)),
        modality_features={s: tuple(f) for s, f in zip(sequences, modality_features)},
    )


def magms_leaves():
    return torch.randn(2, 4, 8, 8, 8), [
        torch.randn(2, c, 8 // 2**i, 8 // 2**i, 8 // 2**i) for i, c in enumerate((4, 8))
    ]


def test_magms_self_distillation_is_zero_when_every_sequence_matches_the_fusion():
    logits, features = magms_leaves()
    same = magms_output(logits, features, [logits.clone()] * 4, [[f.clone() for f in features]] * 4)
    result = MAGMSObjective(LossConfig())(same, one_hot())
    assert result.terms["self_distillation_kl"].abs() < 1e-6
    assert result.terms["feature_distillation"].abs() < 1e-6
    assert torch.allclose(result.terms["segmentation_modalities"], 4 * result.terms["segmentation_fused"])

    others = [magms_leaves() for _ in range(4)]
    different = magms_output(logits, features, [o[0] for o in others], [o[1] for o in others])
    result = MAGMSObjective(LossConfig())(different, one_hot())
    assert result.terms["self_distillation_kl"] > 0 and result.terms["feature_distillation"] > 0
    check_total(result)


def test_magms_feature_term_is_the_mse_of_all_levels_concatenated():
    logits, features = magms_leaves()
    others = [magms_leaves() for _ in range(4)]
    result = MAGMSObjective(LossConfig())(
        magms_output(logits, features, [o[0] for o in others], [o[1] for o in others]), one_hot()
    )

    def flat(levels):
        return torch.cat([f.flatten(1) for f in levels], dim=1)

    expected = sum(F.mse_loss(flat(o[1]), flat(features)) for o in others)
    assert torch.allclose(result.terms["feature_distillation"], expected)


@pytest.mark.parametrize("detach", [False, True])
def test_magms_fused_path_is_pulled_by_distillation_unless_detached(detach):
    logits, features = magms_leaves()
    fused = [logits.requires_grad_(), *(f.requires_grad_() for f in features)]
    others = [magms_leaves() for _ in range(4)]
    outputs, target = (
        magms_output(logits, features, [o[0] for o in others], [o[1] for o in others]),
        one_hot(),
    )
    config = LossConfig(magms_detach_fused_target=detach)
    no_distillation = dataclasses.replace(config, magms_kl_weight=0.0, magms_feature_weight=0.0)
    full = torch.autograd.grad(MAGMSObjective(config)(outputs, target).total, fused, allow_unused=True)
    seg = torch.autograd.grad(
        MAGMSObjective(no_distillation)(outputs, target).total, fused, allow_unused=True
    )
    assert torch.allclose(full[0], seg[0]) == detach
    assert all((g is None or g.abs().sum() == 0) == detach for g in full[1:])


def test_magms_needs_the_per_sequence_outputs():
    with pytest.raises(ValueError, match="per-sequence"):
        MAGMSObjective(LossConfig())(MAGMSOutput(logits=torch.randn(2, 4, 8, 8, 8), features=()), one_hot())


def test_objective_on_real_tiny_networks():
    config = MSTKDNetConfig(
        base_width=4,
        encoder_blocks=(1, 1, 1),
        content_blocks=1,
        groups=2,
        transformer=TransformerConfig(
            hidden_size=16, layers=4, heads=2, mlp_size=32, tapped_layers=(1, 2, 3, 4), feature_width=4
        ),
        discriminator_widths=(8, 16),
    )
    patch = (32, 32, 64)
    teacher, student = MSTKDNet(config, patch), MSTKDNet(config, patch)
    critic = StyleDiscriminator(student.style_channels, config.discriminator_widths, student.style_size)
    images = torch.randn(1, 4, *patch)
    target = F.one_hot(torch.randint(0, 4, (1, *patch)), 4).movedim(-1, 1).float()
    teacher_out, student_out = (
        teacher(images),
        student(images * torch.tensor([1.0, 0, 1, 0]).view(1, 4, 1, 1, 1)),
    )

    result = MSTKDObjective(LossConfig())(teacher_out, student_out, target, 2.5, critic)
    assert set(result.terms) == ALL_TERMS and torch.isfinite(result.total)
    result.total.backward(retain_graph=True)
    for network in (teacher, student):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in network.parameters())
    assert all(p.grad is None for p in critic.parameters())

    teacher.zero_grad()
    student.zero_grad()
    discriminator_objective(critic, teacher_out, student_out).backward()
    assert all(p.grad is not None for p in critic.parameters())
    assert all(
        p.grad is None or p.grad.abs().sum() == 0 for p in (*teacher.parameters(), *student.parameters())
    )


def test_magms_objective_on_a_real_tiny_network():
    network = MAGMSNet(MAGMSConfig(widths=(4, 8)))
    result = MAGMSObjective(LossConfig())(
        network(torch.randn(2, 4, 16, 16, 16), per_modality=True), one_hot(16)
    )
    assert torch.isfinite(result.total)
    result.total.backward()
    assert all(p.grad is not None for p in network.parameters())
