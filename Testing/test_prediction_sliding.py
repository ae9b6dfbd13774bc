"""Our sliding window gives MONAI's `sliding_window_inference` results to the bit, without MONAI."""

from __future__ import annotations

import pytest
import torch
from monai.inferers import sliding_window_inference
from torch import nn

from mstkd.prediction.sliding import gaussian_weights, sliding_window, window_grid
from mstkd.prediction.tiling import window_starts


def _network() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Conv3d(4, 8, 3, padding=1), nn.ReLU(), nn.Conv3d(8, 3, 1), nn.Sigmoid()).eval()


@pytest.mark.parametrize(
    "size, patch, overlap, per_batch",
    [
        ((37, 50, 29), (16, 24, 32), 0.5, 3),  # the last side shorter than the window: padded
        ((37, 50, 29), (16, 24, 32), 0.25, 1),
        ((40, 40, 40), (40, 16, 17), 0.5, 4),  # one side exactly a window; an odd window
        ((9, 11, 10), (12, 12, 12), 0.5, 2),  # the whole volume inside one padded window
    ],
)
def test_same_scores_as_monai(size, patch, overlap, per_batch):
    network = _network()
    image = torch.randn(2, 4, *size, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        expected = sliding_window_inference(
            image, patch, per_batch, network, overlap=overlap, mode="gaussian", device=torch.device("cpu")
        )
    ours = sliding_window(image, patch, network, overlap, per_batch)
    assert ours.shape == (2, 3, *size)
    assert torch.equal(ours, torch.as_tensor(expected).as_subclass(torch.Tensor))


def test_constant_blending_is_monais_too():
    network = _network()
    size, patch = (37, 50, 29), (16, 24, 32)
    image = torch.randn(1, 4, *size, generator=torch.Generator().manual_seed(6))
    with torch.inference_mode():
        expected = sliding_window_inference(
            image, patch, 2, network, overlap=0.5, mode="constant", device=torch.device("cpu")
        )
    ours = sliding_window(image, patch, network, 0.5, 2, blending="constant")
    gaussian = sliding_window(image, patch, network, 0.5, 2)
    assert torch.allclose(ours, torch.as_tensor(expected).as_subclass(torch.Tensor), atol=1e-6)
    assert not torch.allclose(ours, gaussian, atol=1e-4)  # the blending is really another one
    with pytest.raises(ValueError, match="blending"):
        sliding_window(image, patch, network, 0.5, 2, blending="median")


def test_window_starts_end_flush_with_the_volume():
    assert window_starts(100, 64, 0.5) == [0, 32, 36]
    assert window_starts(64, 64, 0.5) == [0]
    assert window_starts(30, 64, 0.5) == [0]
    assert window_starts(10, 4, 0.99) == list(range(7))  # the step never drops below one voxel


def test_windows_cover_every_voxel():
    size, patch = (70, 85, 65), (64, 64, 64)
    covered = torch.zeros(size, dtype=torch.int32)
    for window in window_grid(size, patch, 0.5):
        covered[window] += 1
    assert len(window_grid(size, patch, 0.5)) == 8
    assert int(covered.min()) >= 1


def test_gaussian_weights_peak_in_the_centre_and_stay_positive():
    weights = gaussian_weights((9, 8, 7), torch.device("cpu"))
    assert weights.shape == (9, 8, 7)
    assert float(weights.max()) == pytest.approx(float(weights[4, 3:5, 3].max()))
    assert float(weights.min()) >= 1e-3


def test_the_image_is_tested_for_nan_once_not_per_window(monkeypatch):
    """A test of each window's values would make a GPU wait for the host at every window."""
    from pathlib import Path

    from mstkd.errors import MSTKDError
    from mstkd.experiment import build_inference_network, load_experiment
    from mstkd.models import checks
    from mstkd.prediction.window import predict_scores, score_function

    tiny = load_experiment(Path(__file__).resolve().parents[1] / "Training" / "configs" / "tiny.yaml", [])
    torch.manual_seed(0)
    network = build_inference_network(tiny, torch.device("cpu")).eval()
    tests = []
    real_isfinite = torch.isfinite
    monkeypatch.setattr(checks.torch, "isfinite", lambda x: tests.append(x.shape) or real_isfinite(x))
    image = torch.randn(1, 4, 48, 40, 40)
    scores = predict_scores(
        score_function(network), image, tiny.patch, torch.device("cpu"), windows_per_batch=2
    )
    assert scores.shape == (1, 4, 48, 40, 40) and len(window_grid((48, 40, 40), tiny.patch, 0.5)) == 8
    assert tests == [image.shape]
    with torch.inference_mode():
        network(torch.randn(1, 4, *tiny.patch))  # outside the sliding window, every call is tested
    assert len(tests) == 2
    image[0, 1, 5, 5, 5] = float("nan")
    with pytest.raises(MSTKDError, match="NaN or infinite"):
        predict_scores(score_function(network), image, tiny.patch, torch.device("cpu"))
