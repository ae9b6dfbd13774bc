"""`mstkd bench`: rows beside their baselines, the two-backward baseline's update, the GPU suite off a GPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mstkd import devices
from mstkd.bench.model import TwoBackwardStep, synthetic_batch
from mstkd.cli.main import main
from mstkd.conventions import label_convention
from mstkd.experiment import build_networks, load_experiment
from mstkd.training.schedule import Schedule
from mstkd.training.steps import TrainingStep, trainable_module

TINY = Path(__file__).resolve().parents[1] / "Training" / "configs" / "tiny.yaml"


def test_bench_model_gives_each_row_a_baseline_and_no_bf16_without_hardware(tmp_path, monkeypatch, capsys):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t\t: fpu sse2 avx2\n")
    monkeypatch.setattr(devices, "CPUINFO", cpuinfo)
    out = tmp_path / "bench.json"
    assert (
        main(
            ["bench", "model", "--config", str(TINY), "--device", "cpu", "--repeats", "1", "--json", str(out)]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "bf16: not measured, fp32 only: the CPU has neither amx_bf16 nor avx512_bf16" in printed
    report = json.loads(out.read_text())
    rows = {(r["task"], r["precision"], r["layout"]): r for r in report["rows"]}
    assert set(rows) == {
        ("training step", "fp32", "default"),
        ("training step, two backward passes", "fp32", "default"),
        ("inference", "fp32", "default"),
        ("inference", "fp32", "channels_last"),
    }
    two = rows[("training step, two backward passes", "fp32", "default")]
    assert two["baseline"] == "training step, fp32, default"
    assert two["ratio"] == two["median_s"] / rows[("training step", "fp32", "default")]["median_s"]
    assert rows[("inference", "fp32", "channels_last")]["baseline"] == "inference, fp32, default"
    assert report["inference_layout"] == "channels_last" and report["machine"]["cpus"] >= 1


def test_the_two_backward_baseline_computes_the_same_update():
    experiment = load_experiment(TINY, [])
    labels, device = label_convention(experiment.data.labels), torch.device("cpu")
    batch = synthetic_batch(experiment, 1)
    updated = []
    for kind in (TrainingStep, TwoBackwardStep):
        torch.manual_seed(0)
        networks = build_networks(experiment, device)
        schedule = Schedule(total_steps=3, steps_per_epoch=1)
        trainable = trainable_module(experiment, networks)
        step = kind(experiment, experiment.train, networks, trainable, labels, device, schedule)
        torch.manual_seed(1)
        step(batch, epoch=0.0)
        updated.append(torch.cat([p.detach().flatten() for p in networks.student.parameters()]))
    moved = (updated[0] - torch.cat([p.detach().flatten() for p in _fresh_student(experiment)])).abs().max()
    assert float(moved) > 0  # the step did change the student
    assert torch.allclose(updated[0], updated[1], atol=1e-6)


def _fresh_student(experiment):
    torch.manual_seed(0)
    return build_networks(experiment, torch.device("cpu")).student.parameters()


def test_the_gpu_suite_skips_cleanly_without_a_gpu(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["bench", "all", "--device", "cuda", "--out", str(tmp_path)]) == 0
    assert "skipped" in capsys.readouterr().out
    written = json.loads((tmp_path / "all.json").read_text())
    assert written["parts"] == [] and "GPU" in written["skipped"]


def test_bench_inference_times_both_memory_layouts_side_by_side(tmp_path, capsys):
    out = tmp_path / "layouts.json"
    arguments = ["bench", "inference", "--config", str(TINY), "--device", "cpu", "--shape", "48,48,32"]
    arguments += ["--sequences", "flair,t2", "--beside-default-layout", "--repeats", "1", "--json", str(out)]
    assert main(arguments) == 0
    printed = capsys.readouterr().out
    assert "default s" in printed and "differing voxels" in printed
    (row,) = json.loads(out.read_text())["rows"]
    assert row["sequences"] == ["flair", "t2"] and row["layout"] == "channels_last"
    assert row["ratio"] == pytest.approx(row["median_s"] / row["default_median_s"])
    assert 0 <= row["differing_voxels"] <= 48 * 48 * 32 and row["repeats"] == 1
