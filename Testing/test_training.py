"""Training for real on phantoms: it learns, it resumes bit for bit, and torchrun keeps ranks equal."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mstkd.checkpoint import load_checkpoint
from mstkd.cli.main import main
from mstkd.conventions import label_convention, parse_subsets
from mstkd.experiment import build_networks, inference_network, load_experiment
from mstkd.intensity import normalise_sequences
from mstkd.prediction.window import predict_scores, score_function
from mstkd.splits import read_split
from mstkd.targets import labels_to_channels
from mstkd.training.data import LABEL, RAW
from mstkd.training.run import RunFiles, select, usable_cases
from mstkd.training.trainer import Trainer
from mstkd.training.validation import MEAN, load_validation_cases, validate

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "Training" / "configs" / "tiny.yaml"


def tiny_settings(data_root: Path, steps: int, **extra: object) -> list:
    settings = {
        "data.root": data_root,
        "data.workers": 0,
        "data.split_fractions": "[0.67,0.33,0]",
        "train.steps": steps,
        "train.val_every": 1000,
        "train.val_subsets": "all",
        **extra,
    }
    return [f"{key}={value}" for key, value in settings.items()]


def run_cli(*args: str, env_extra=None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "mstkd", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def weights_of(run: Path) -> dict:
    return load_checkpoint(RunFiles(run).weights).state_dict


def soft_dice(network, cases, patch, labels) -> float:
    """Mean soft Dice of the tumour channels on whole validation volumes (all four sequences)."""
    values = []
    for case in cases:
        image = torch.from_numpy(normalise_sequences(np.asarray(case[RAW]), (True,) * 4))[None]
        probabilities = predict_scores(score_function(network), image, patch, torch.device("cpu"))[0, :3]
        target = labels_to_channels(torch.from_numpy(np.asarray(case[LABEL])[0]), labels)[:3]
        overlap = (probabilities * target).sum(dim=(1, 2, 3))
        values.append(
            float((2 * overlap / (probabilities.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3)))).mean())
        )
    return float(np.mean(values))


def trained_and_untrained(experiment, run: Path):
    """Validation cases, their label convention, the run's exported student and that network untrained."""
    labels = label_convention(experiment.data.labels)
    _, cases = usable_cases(experiment.data)
    val_cases = load_validation_cases(select(cases, read_split(RunFiles(run).split("val"))), labels)
    torch.manual_seed(experiment.train.seed)
    untrained = inference_network(experiment, build_networks(experiment)).eval()
    trained = inference_network(experiment, build_networks(experiment)).eval()
    trained.load_state_dict(load_checkpoint(RunFiles(run).student).state_dict)
    return val_cases, labels, trained, untrained


def test_a_short_mstkd_training_beats_the_untrained_model_on_held_out_soft_dice(phantom_root, tmp_path):
    settings = {"train.learning_rate": 3e-3, "train.val_every": 30, "train.gradient_norm_every": 15}
    experiment = load_experiment(TINY, tiny_settings(phantom_root, 30, **settings))
    run = tmp_path / "run"
    assert Trainer(experiment, run).run() == 30

    val_cases, labels, trained, untrained = trained_and_untrained(experiment, run)
    # The training objective's Dice: in 30 CPU steps thresholded Dice does not move yet.
    before = soft_dice(untrained, val_cases, experiment.patch, labels)
    after = soft_dice(trained, val_cases, experiment.patch, labels)
    assert after > 2 * before, (before, after)
    log = RunFiles(run).log.read_text()
    assert "validation Dice" in log and "segmentation_student" in log
    assert re.search(r"dmld_probability=[0-9.e+-]+\*[0-9.e+-]+ ", log), "each term is logged with its weight"
    norms = [line for line in log.splitlines() if "gradient norm on the student" in line]
    assert len(norms) == 2, "every 15 steps"
    norm = dict(pair.split("=") for pair in norms[-1].split("student ")[1].split())
    assert float(norm["segmentation_teacher"]) == 0.0 and float(norm["segmentation_student"]) > 0
    scalars = EventAccumulator(str(RunFiles(run).tensorboard)).Reload().Tags()["scalars"]
    assert {"weight/dmld_probability", "gradient_norm/dmld_logit_kl", "loss/content"} <= set(scalars)
    best = load_checkpoint(RunFiles(run).best_student)
    assert best.metadata["method"] == "mstkd" and "validation_dice" in best.metadata
    assert list(RunFiles(run).tensorboard.glob("events.*")), "TensorBoard scalars are written"


def test_a_short_training_of_the_student_beats_the_untrained_model_on_validation_dice(phantom_root, tmp_path):
    # The student alone (modality dropout) through the same trainer, data pipeline and
    # validation as MST-KDNet.
    settings = {"method": "baseline", "train.learning_rate": 3e-3, "data.foreground_ratio": 0.9}
    experiment = load_experiment(TINY, tiny_settings(phantom_root, 200, **settings))
    run = tmp_path / "run"
    assert Trainer(experiment, run).run() == 200

    val_cases, _, trained, untrained = trained_and_untrained(experiment, run)
    subsets = parse_subsets("all;flair,t2;t1ce")
    cpu = torch.device("cpu")
    before = validate(untrained, val_cases, subsets, experiment, cpu)
    after = validate(trained, val_cases, subsets, experiment, cpu)
    assert after["WT"] > before["WT"] + 0.2, (before, after)
    assert after[MEAN] > before[MEAN] + 0.05, (before, after)


def test_a_run_stopped_by_sigterm_and_resumed_equals_one_run_straight_through(phantom_root, tmp_path):
    settings = [
        s
        for pair in (("--set", s) for s in tiny_settings(phantom_root, 8, **{"train.checkpoint_every": 2}))
        for s in pair
    ]
    straight = run_cli("train", "--config", str(TINY), *settings, "--out", str(tmp_path / "straight"))
    interrupted = run_cli("train", "--config", str(TINY), *settings, "--out", str(tmp_path / "stopped"))
    state = RunFiles(tmp_path / "stopped").state
    deadline = time.monotonic() + 120
    while not state.exists() and interrupted.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    interrupted.send_signal(signal.SIGTERM)
    out, err = interrupted.communicate(timeout=120)
    assert interrupted.returncode == 128 + signal.SIGTERM, err  # a scheduler must not think it finished
    stopped_at = load_checkpoint(RunFiles(tmp_path / "stopped").weights).metadata["step"]
    assert 2 <= stopped_at < 8 and "Stopped at step" in out

    resumed = run_cli("train", "--resume", "--out", str(tmp_path / "stopped"))
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    assert straight.wait(timeout=300) == 0, straight.stderr.read()
    a, b = weights_of(tmp_path / "straight"), weights_of(tmp_path / "stopped")
    assert a.keys() == b.keys()
    different = [name for name in a if not torch.equal(a[name], b[name])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def test_sigterm_to_the_whole_process_group_stops_a_run_with_loader_workers_and_it_resumes(
    phantom_root, tmp_path
):
    """A scheduler (or `kill -- -PGID`) signals every process of the job, the data loader's workers too:
    the run must still stop after its step with a checkpoint, not die of a killed worker."""
    options = tiny_settings(phantom_root, 40, **{"train.checkpoint_every": 2, "data.workers": 1})
    settings = [s for pair in (("--set", s) for s in options) for s in pair]
    run = tmp_path / "run"
    command = [sys.executable, "-m", "mstkd", "train", "--config", str(TINY), *settings, "--out", str(run)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    job = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not RunFiles(run).state.exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(job.pid, signal.SIGTERM)
    out, err = job.communicate(timeout=120)
    assert job.returncode == 128 + signal.SIGTERM, err
    assert "Stopped at step" in out and "Traceback" not in err, err
    stopped_at = load_checkpoint(RunFiles(run).weights).metadata["step"]
    assert 2 <= stopped_at < 40
    resumed = run_cli("train", "--resume", "--out", str(run))
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    assert load_checkpoint(RunFiles(run).weights).metadata["step"] == 40


def test_torchrun_with_two_processes_keeps_both_ranks_identical(phantom_root, tmp_path):
    run = tmp_path / "ddp"
    # Rank 0 alone measures the gradient norms (one extra local backward per term), mid-run.
    options = tiny_settings(phantom_root, 3, **{"train.gradient_norm_every": 2})
    settings = [s for pair in (("--set", s) for s in options) for s in pair]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "mstkd",
        "train",
        "--config",
        str(TINY),
        *settings,
        "--out",
        str(run),
    ]
    result = subprocess.run(
        command,
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = RunFiles(run).log.read_text()
    assert "step 3: weights identical on all 2 ranks" in log
    assert "step 2 gradient norm on the student" in log
    assert load_checkpoint(RunFiles(run).weights).metadata["step"] == 3
    assert result.stdout.count("Trained to step 3") == 1, "only rank 0 reports"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--config", str(TINY), "--set", "train.steps=0"], "train.steps must be at least 1"),
        (["--config", str(TINY)], "Set data.root"),
        (["--config", str(TINY), "--set", "data.root=/nonexistent"], "nonexistent"),
        (["--config", str(TINY), "--set", "train.stepz=3"], "Unknown setting"),
        (["--resume"], "--resume needs --out"),
    ],
)
def test_train_refuses_bad_requests_with_a_message(arguments, message, tmp_path, capsys):
    assert (
        main(
            ["train", *arguments, "--out", str(tmp_path / "r")]
            if "--resume" not in arguments
            else ["train", *arguments]
        )
        == 2
    )
    assert message in capsys.readouterr().err


def test_resume_of_an_empty_folder_says_there_is_nothing_to_resume(tmp_path, capsys, phantom_root):
    config = tmp_path / "config.yaml"
    config.write_text(TINY.read_text() + f"\ndata:\n  root: {phantom_root}\n  workers: 0\n")
    assert main(["train", "--resume", "--config", str(config), "--out", str(tmp_path / "none")]) == 2
    assert "nothing to resume" in capsys.readouterr().err
