"""MST-KDNet and its style discriminator: sizes, every output's shape, input errors, gradients."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mstkd.errors import MSTKDError
from mstkd.experiment import build_networks, load_experiment
from mstkd.models.outputs import MSTKDNetOutput

CONFIGS = Path(__file__).resolve().parents[1] / "Training" / "configs"
META = torch.device("meta")


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def expected_shapes(patch, base, feature_width, heads, batch=1):
    """Every MSTKDNetOutput field's shape, derived from METHOD.md 1.2 and the reference geometry."""
    c3d = tuple(s // 8 for s in patch)
    tokens = (patch[0] // 32) * (patch[1] // 32) * (patch[2] // 32)
    f = feature_width
    double = tuple(2 * s for s in c3d)
    half = tuple(s // 2 for s in c3d)
    return {
        "logits": (batch, 4, *patch),
        "probabilities": (batch, 4, *patch),
        "transformer_features": [
            (batch, f, *c3d),
            (batch, 2 * f, *double),
            (batch, 4 * f, *c3d),
            (batch, 8 * f, *half),
        ],
        "attention_maps": [(batch, heads, tokens, tokens)] * 4,
        "content": (batch, 8 * base, *c3d),
        "style_features": [(batch, 8 * base, *c3d)] * 3,
    }


def shapes(output: MSTKDNetOutput):
    return {
        name: [tuple(t.shape) for t in value] if isinstance(value, tuple) else tuple(value.shape)
        for name, value in vars(output).items()
    }


def test_paper_size_matches_the_reference():
    config = load_experiment(CONFIGS / "paper.yaml")
    networks = build_networks(config, META)
    for network in (networks.teacher, networks.student):
        assert count(network) == pytest.approx(154.3e6, rel=0.02)
        assert count(network.bottleneck) == pytest.approx(149.6e6, rel=0.02)
    assert config.patch == (160, 192, 128)


def test_paper_size_output_shapes_on_the_meta_device():
    config = load_experiment(CONFIGS / "paper.yaml")
    networks = build_networks(config, META)
    output = networks.student(torch.empty(2, 4, 160, 192, 128, device=META))
    assert shapes(output) == expected_shapes((160, 192, 128), 16, 64, 12, batch=2)
    assert [f.shape[1] for f in output.transformer_features] == [64, 128, 256, 512]
    assert networks.discriminator(output.style_features[1]).shape == (2,)


def test_small_config_output_shapes_on_the_meta_device():
    config = load_experiment(CONFIGS / "small.yaml")
    networks = build_networks(config, META)
    assert 3e5 < count(networks.student) < 2.5e6
    output = networks.student(torch.empty(1, 4, *config.patch, device=META))
    assert shapes(output) == expected_shapes(config.patch, 8, 4, 4)


@pytest.fixture(scope="module")
def tiny():
    # 32 x 32 x 64 gives two tokens, so attention is not trivially 1 and every weight learns.
    config = load_experiment(CONFIGS / "tiny.yaml", ["patch=[32, 32, 64]"])
    torch.manual_seed(0)
    return config, build_networks(config)


def test_tiny_forward_shapes_probabilities_and_discriminator(tiny):
    config, networks = tiny
    assert count(networks.student) < 300_000
    x = torch.randn(2, 4, *config.patch)
    output = networks.teacher(x)
    assert shapes(output) == expected_shapes(config.patch, 4, 2, 2, batch=2)
    assert torch.allclose(output.probabilities, torch.sigmoid(output.logits))
    for attention in output.attention_maps:
        assert torch.allclose(attention.sum(-1), torch.ones(()))
    logits = networks.discriminator(output.style_features[1].detach())
    assert logits.shape == (2,) and torch.isfinite(logits).all()


def test_a_gradient_reaches_every_student_parameter(tiny):
    config, networks = tiny
    student = networks.student.train()
    student.zero_grad()
    student(torch.randn(1, 4, *config.patch)).logits.square().mean().backward()
    dead = [name for name, p in student.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert dead == []


def test_eval_mode_is_deterministic(tiny):
    config, networks = tiny
    student = networks.student.eval()
    x = torch.randn(1, 4, *config.patch)
    with torch.no_grad():
        assert torch.equal(student(x).logits, student(x).logits)
    student.train()


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((1, 3, 32, 32, 64), r"\(batch, 4, 32, 32, 64\)"),
        ((1, 4, 32, 32, 32), r"\(batch, 4, 32, 32, 64\).*sliding windows"),
        ((4, 32, 32, 64), r"\(batch, 4, 32, 32, 64\)"),
    ],
)
def test_wrong_input_shape_names_the_expected_one(tiny, shape, message):
    _, networks = tiny
    with pytest.raises(MSTKDError, match=message):
        networks.student(torch.zeros(shape))


def test_non_finite_and_integer_inputs_are_refused(tiny):
    config, networks = tiny
    x = torch.zeros(1, 4, *config.patch)
    x[0, 2, 1, 1, 1] = float("nan")
    with pytest.raises(MSTKDError, match="NaN"):
        networks.student(x)
    with pytest.raises(MSTKDError, match="floating-point"):
        networks.student(torch.zeros(1, 4, *config.patch, dtype=torch.int64))


def test_discriminator_refuses_a_map_of_another_size(tiny):
    _, networks = tiny
    with pytest.raises(MSTKDError, match=r"\(batch, 32, 4, 4, 8\)"):
        networks.discriminator(torch.zeros(1, 32, 4, 4, 4))
