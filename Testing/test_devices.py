"""Devices: the engine's names for them, Apple's GPU with its CPU fallback, the device check of the warm
engine (real tiny model on this CPU), and the time estimate it feeds."""

from __future__ import annotations

import json
import math

import pytest
import torch
from monai.data.utils import dense_patch_slices
from monai.inferers.utils import _get_scan_interval

from mstkd.cli.serve import PredictorCache
from mstkd.conventions import DEVICE_CHOICES, parse_device
from mstkd.devices import mps_available, resolve_device
from mstkd.errors import MSTKDError
from mstkd.inference.device_check import check_device
from mstkd.inference.events import ProgressEvent, TextWriter
from mstkd.inference.predictor import run_with_fallback
from mstkd.prediction.estimate import ModelSpeed, estimate_time
from mstkd.prediction.tiling import window_count


def test_device_names_are_checked_once_for_every_front_end():
    assert DEVICE_CHOICES == ("auto", "cpu", "cuda", "mps")
    assert [parse_device(name) for name in ("Auto", " cpu", "CUDA", "cuda:1", "MPS")] == [
        "auto",
        "cpu",
        "cuda",
        "cuda:1",
        "mps",
    ]
    for wrong in ("tpu", "cuda:", "cuda:x", "gpu"):
        with pytest.raises(MSTKDError, match="Unknown device"):
            parse_device(wrong)


@pytest.mark.skipif(torch.cuda.is_available() or mps_available(), reason="a machine without a GPU")
def test_without_a_gpu_auto_is_the_cpu_and_a_gpu_request_says_why_not():
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(
        MSTKDError, match="Apple's GPU \\(MPS\\) was requested but this PyTorch cannot use it"
    ):
        resolve_device("mps")
    with pytest.raises(MSTKDError, match="A GPU was requested but PyTorch sees none"):
        resolve_device("cuda:1")


def test_apples_gpu_hands_over_to_the_cpu_when_out_of_memory_or_an_operation_is_missing():
    def lacks_an_operation(device, windows):
        if device.type == "mps":
            raise NotImplementedError(
                "The operator 'aten::max_pool3d_with_indices' is not currently implemented for the MPS "
                "device."
            )
        return f"labels from {device}"

    notes = []
    result, device, fallbacks = run_with_fallback(lacks_an_operation, torch.device("mps"), notes.append)
    assert result == "labels from cpu" and device.type == "cpu"
    assert fallbacks == notes and fallbacks[0].startswith("mps lacks an operation this model needs")

    def out_of_memory(device, windows):
        if device.type == "mps":
            raise RuntimeError("MPS backend out of memory (MPS allocated: 17.00 GB)")
        return device

    device, fallbacks = run_with_fallback(out_of_memory, torch.device("mps"), print)[1:]
    assert device.type == "cpu" and "ran out of memory" in fallbacks[0]

    def a_bug(device, windows):
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):  # only what the device lacks falls back
        run_with_fallback(a_bug, torch.device("mps"), print)


def test_the_device_check_measures_the_model_where_it_will_run(tiny_model_file):
    predictors = PredictorCache()
    report = check_device(predictors, str(tiny_model_file), "auto")
    assert report["requested"] == "auto" and report["device"] == "cpu" and report["kind"] == "cpu"
    if torch.version.cuda is None and not mps_available():
        assert report["reason"].startswith(f"this PyTorch ({torch.__version__}) is built without GPU support")
    assert report["fell_back"] is False and report["gpus"] == [] and report["torch"] == torch.__version__
    assert report["threads"] == torch.get_num_threads() and "cores" in report["name"]
    speed = report["speed"]
    assert speed["device"] == "cpu" and 0 < speed["seconds_per_window"] < 60
    assert speed["patch"] == (32, 32, 32) and speed["spacing"] == predictors.predictor.model.spacing
    assert speed["passes"] == 2 ** len(predictors.predictor.model.output.mirror_axes)
    assert report["sha256"] == predictors.predictor.sha256 and report["peak_mib"] is None

    chosen = check_device(predictors, str(tiny_model_file), "cpu")
    assert chosen["reason"] == "" and chosen["device"] == "cpu"
    with pytest.raises(MSTKDError, match="Unknown device"):
        check_device(predictors, str(tiny_model_file), "tpu")


@pytest.mark.parametrize("size", [(64, 64, 64), (65, 64, 64), (120, 120, 78), (30, 200, 17), (97, 33, 160)])
def test_the_window_count_is_monais(size):
    patch, overlap = (64, 64, 64), 0.5
    padded = [max(s, p) for s, p in zip(size, patch)]
    interval = _get_scan_interval(padded, patch, 3, (overlap,) * 3)
    assert window_count(size, patch, overlap) == len(dense_patch_slices(padded, patch, interval))


def test_the_time_estimate_adds_windows_preparation_and_registrations():
    speed = ModelSpeed("cpu", 0.25, 4, (64, 64, 64), (2.0, 2.0, 2.0), 0.5)
    # A brain of 140 x 170 x 130 mm: 70 x 85 x 65 voxels at 2 mm, 2 x 2 x 2 windows (64, step 32).
    estimate = estimate_time(speed, (140.0, 170.0, 130.0), 2 * 8_928_000, registrations=1)
    assert estimate.windows == 8 and estimate.inference_s == pytest.approx(2.0)
    assert estimate.preparation_s == pytest.approx(17.856 * 0.03 + 1.0)
    assert estimate.seconds == pytest.approx(estimate.inference_s + estimate.preparation_s)
    assert math.isclose(estimate_time(speed, (10.0, 10.0, 10.0), 0).seconds, 0.25)
    # Measured with 8 mirrored passes a window, asked for one: an eighth of the inference.
    mirrored = ModelSpeed("cpu", 2.0, 4, (64, 64, 64), (2.0, 2.0, 2.0), 0.5, passes=8)
    one_pass = mirrored.with_passes(1)
    assert (one_pass.seconds_per_window, one_pass.passes) == (0.25, 1)
    assert estimate_time(one_pass, (140.0, 170.0, 130.0), 0).inference_s == pytest.approx(2.0)


def test_an_inference_stage_estimate_is_a_field_the_text_shows():
    event = ProgressEvent("infer", 0.5, "window 4 of 8 (on cpu, 4 per batch)", 7.6)
    assert json.loads(event.to_json()) == {
        "stage": "infer",
        "fraction": 0.5,
        "message": "window 4 of 8 (on cpu, 4 per batch)",
        "remaining_s": 7.6,
    }
    assert "remaining_s" not in ProgressEvent("read", 0.1, "reading").to_json()
    lines = []
    TextWriter(
        type("Stream", (), {"write": lambda self, text: lines.append(text), "flush": lambda self: None})()
    )(event)
    assert lines == ["[ 50%] infer: window 4 of 8 (on cpu, 4 per batch), about 8 s left\n"]
