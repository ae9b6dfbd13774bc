"""BatchNorm statistics at inference: recalibrated averages, per-sample statistics, and their bench."""

from __future__ import annotations

import json

import torch
from torch import nn

from mstkd.cli.main import main
from mstkd.models.batchnorm import per_sample, recalibrated


def small_network():
    torch.manual_seed(0)
    network = nn.Sequential(nn.Conv3d(2, 3, 3, padding=1), nn.BatchNorm3d(3), nn.ReLU())
    network[1].running_mean.fill_(5.0)  # statistics no input here matches
    return network.eval()


def test_per_sample_statistics_are_training_time_batchnorm_at_batch_one():
    network = small_network()
    inputs = torch.randn(2, 2, 6, 6, 6) * torch.tensor([1.0, 4.0]).view(2, 1, 1, 1, 1)
    copied = per_sample(network)
    trained = small_network().train()
    expected = torch.cat([trained(inputs[i : i + 1]) for i in range(2)])
    assert torch.allclose(copied(inputs), expected, atol=1e-5)
    assert not torch.allclose(network(inputs), expected, atol=1e-2), "running statistics differ"
    assert network[1].running_mean.eq(5.0).all(), "the original network is left alone"


def test_recalibration_averages_the_batch_statistics_of_one_pass():
    network = small_network()
    batches = [torch.randn(1, 2, 6, 6, 6) + shift for shift in (0.0, 3.0, -1.0)]
    copied = recalibrated(network, batches)
    with torch.no_grad():
        means = torch.stack([network[0](b).mean(dim=(0, 2, 3, 4)) for b in batches])
    assert torch.allclose(copied[1].running_mean, means.mean(dim=0), atol=1e-5)
    assert not copied.training and network[1].running_mean.eq(5.0).all()


def test_the_bench_scores_a_trained_model_three_ways(tiny_model_file, phantom_root, tmp_path, capsys):
    report = tmp_path / "batchnorm.json"
    arguments = ["--model", str(tiny_model_file), "--data", str(phantom_root), "--subsets", "all"]
    assert (
        main(["bench", "batchnorm", *arguments, "--patches", "3", "--device", "cpu", "--json", str(report)])
        == 0
    )
    dice = json.loads(report.read_text())["dice"]
    assert list(dice) == ["running", "recalibrated", "per-sample"]
    assert all(0.0 <= value <= 1.0 for scores in dice.values() for value in scores.values())
    assert "per-sample" in capsys.readouterr().out
