"""`mstkd study` for real: two tiny arms trained, killed, resumed, evaluated and compared."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from mstkd.cli.main import main
from mstkd.splits import write_split
from mstkd.study.config import load_study
from mstkd.study.report import finished_runs
from mstkd.study.statistics import BOOTSTRAP_SEED, CONFIDENCE, RESAMPLES
from mstkd.training.state import load_training_state

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "Training" / "configs" / "tiny.yaml"
STEPS = 8
SUBSETS = ["all", "FLAIR+T2"]


def write_study(folder: Path, phantom_root: Path, **changes) -> Path:
    """A two-arm tiny study on three phantoms, tested on two others and on two out-of-distribution ones."""
    train = write_split(folder / "train.txt", ["BraTS2021_00000", "BraTS2021_00001", "BraTS2021_00002"])
    test = write_split(folder / "test.txt", ["BraTS2021_00003", "BraTS2021_00004"])
    study = {
        "name": "tiny",
        "arms": {
            "baseline": {"config": str(TINY), "set": ["method=baseline"]},
            "mstkdnet": {"config": str(TINY)},
        },
        "set": [
            "data.workers=0",
            "train.learning_rate=0.003",
            "train.checkpoint_every=4",
            "train.val_every=1000",
            "train.val_subsets=all",
        ],
        "data": {
            "train": [{"root": str(phantom_root), "split": train.name}],
            "split": {"fractions": [0.67, 0.33], "seed": 1},
            "test": {
                "held_out": {"root": str(phantom_root), "split": test.name},
                "generated": {"phantoms": {"cases": 2, "seed": 5, "shape": [48, 48, 32], "generator": "ood"}},
            },
        },
        "steps": STEPS,
        "seeds": [1, 2],
        "device": "cpu",
        "evaluation": {"subsets": ";".join(SUBSETS), "overlap": 0.25},
        **changes,
    }
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def study_process(config: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "mstkd", "study", "--config", str(config), "--out", str(out)]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture(scope="module")
def killed_and_resumed(phantom_root, tmp_path_factory):
    """A study SIGKILLed while training its second run, then run again to the end."""
    folder = tmp_path_factory.mktemp("study")
    config, out = write_study(folder, phantom_root), folder / "out"
    second = out / "runs" / "mstkdnet" / "seed-1" / "state.pt"
    process = study_process(config, out)
    while not second.exists() and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL, "the study ended before its second run checkpointed"
    killed_at = int(load_training_state(second)["step"])
    first = out / "runs" / "baseline" / "seed-1"
    finished = {
        p: p.stat().st_mtime_ns for p in [*first.glob("*.safetensors"), *out.glob("evaluations/**/*.json")]
    }
    resumed = study_process(config, out)
    stdout, stderr = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, stderr
    return {"out": out, "config": config, "stdout": stdout, "killed_at": killed_at, "finished": finished}


def test_a_killed_study_resumes_without_redoing_finished_work(killed_and_resumed):
    out, stdout = killed_and_resumed["out"], killed_and_resumed["stdout"]
    assert 0 < killed_and_resumed["killed_at"] < STEPS
    assert f"mstkdnet/seed-1: resuming at step {killed_and_resumed['killed_at']} of {STEPS}" in stdout
    assert f"baseline/seed-1: trained ({STEPS} steps), kept" in stdout
    assert "baseline/seed-1: evaluating" not in stdout
    assert len(killed_and_resumed["finished"]) >= 3  # the first run's models and its evaluations
    for path, modified in killed_and_resumed["finished"].items():
        assert path.stat().st_mtime_ns == modified, f"{path} was written again"
    for arm in ("baseline", "mstkdnet"):
        for seed in (1, 2):
            assert int(load_training_state(out / "runs" / arm / f"seed-{seed}" / "state.pt")["step"]) == STEPS
    report = json.loads((out / "report.json").read_text())
    assert report["convention"]["name"] == "brats-legacy" and report["subsets"] == SUBSETS
    markdown = (out / "report.md").read_text()
    assert "Metric convention: **brats-legacy**" in markdown and "mstkdnet minus baseline" in markdown
    for figure in ("dice_per_subset_held_out.png", "dice_per_subset_generated.png", "training_curves.png"):
        assert (out / "figures" / figure).stat().st_size > 10_000


def case_by_subset(section: dict, arm: str, region: str, metric: str) -> np.ndarray:
    """(case, subset) scores of an arm, each the mean over the seeds its comparison uses."""
    runs = section["arms"][arm]["runs"]
    seeds = section["comparisons"]["mstkdnet"]["seeds"]
    return np.mean(
        [
            [[runs[str(s)]["scores"][c][k][region][metric] for k in SUBSETS] for c in section["cases"]]
            for s in seeds
        ],
        axis=0,
    )


def test_the_reported_statistics_match_scipy_on_the_reported_per_case_numbers(killed_and_resumed):
    report = json.loads((killed_and_resumed["out"] / "report.json").read_text())
    checked = 0
    for section in report["tests"].values():
        comparison = section["comparisons"]["mstkdnet"]
        assert comparison["seeds"] == [1, 2]
        for row in comparison["rows"]:
            key = row["region"], row["metric"]
            arm, reference = (case_by_subset(section, name, *key) for name in ("mstkdnet", "baseline"))
            differences = arm - reference
            if row["subset"] == "average":
                differences = differences.mean(axis=1)
            else:
                differences = differences[:, SUBSETS.index(row["subset"])]
            assert row["cases"] == len(section["cases"]) == 2
            assert row["mean"] == pytest.approx(differences.mean(), abs=1e-12)
            if np.any(differences):
                assert row["p_value"] == pytest.approx(stats.wilcoxon(differences).pvalue, rel=1e-9)
            else:
                assert row["p_value"] == 1.0
            interval = stats.bootstrap(
                (differences,),
                np.mean,
                confidence_level=CONFIDENCE,
                n_resamples=RESAMPLES,
                method="percentile",
                random_state=BOOTSTRAP_SEED,
            ).confidence_interval
            assert row["ci"] == pytest.approx([interval.low, interval.high], abs=1e-9)
            checked += 1
    assert checked == 2 * (len(SUBSETS) + 1) * 3 * 2  # test sets x rows x regions x metrics


def test_a_changed_config_is_refused_instead_of_mixing_runs(killed_and_resumed, capsys):
    changed = killed_and_resumed["config"].parent / "changed.yaml"
    study = yaml.safe_load(killed_and_resumed["config"].read_text())
    study["set"] = [*study["set"], "train.learning_rate=0.001"]
    changed.write_text(yaml.safe_dump(study))
    assert main(["study", "--config", str(changed), "--out", str(killed_and_resumed["out"])]) == 2
    assert "train.learning_rate" in capsys.readouterr().err


def test_a_test_set_that_shares_a_case_with_training_is_refused(phantom_root, tmp_path, capsys):
    config = write_study(tmp_path, phantom_root)
    write_split(tmp_path / "test.txt", ["BraTS2021_00002", "BraTS2021_00003"])
    assert main(["study", "--config", str(config), "--out", str(tmp_path / "out")]) == 2
    assert "Test set 'held_out' shares 1 case(s) with the training sources" in capsys.readouterr().err


def test_a_folder_of_other_files_is_refused_as_the_study_folder(phantom_root, tmp_path, capsys):
    config = write_study(tmp_path, phantom_root)
    papers = tmp_path / "papers"
    papers.mkdir()
    (papers / "report.md").write_text("my own notes")
    assert main(["study", "--config", str(config), "--out", str(papers)]) == 2
    assert "holds files that are not a study's" in capsys.readouterr().err
    assert sorted(p.name for p in papers.iterdir()) == ["report.md"]
    assert (papers / "report.md").read_text() == "my own notes"


def test_held_out_phantoms_are_refused_as_training_data(phantom_root, tmp_path, capsys):
    config = write_study(tmp_path, phantom_root)
    study = yaml.safe_load(config.read_text())
    study["data"]["train"].append({"phantoms": {"cases": 2, "seed": 5, "generator": "ood"}})
    config.write_text(yaml.safe_dump(study))
    assert main(["study", "--config", str(config), "--out", str(tmp_path / "out")]) == 2
    assert "held-out test set: name them under test:, not train:" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_study_budget_overrides_a_config_that_counts_epochs():
    study = load_study(ROOT / "Resources" / "studies" / "cpu-phantoms" / "study.yaml")
    experiment = study.experiment("magms", 1)  # magms.yaml trains for 300 epochs on its own
    assert experiment.train.steps == study.steps and experiment.train.epochs is None


def test_a_partial_study_says_which_runs_it_holds():
    report = {
        "arms": {"baseline": {}, "mstkdnet": {}},
        "seeds": [1, 2],
        "tests": {
            "in_distribution": {
                "arms": {"baseline": {"runs": {"1": {}, "2": {}}}, "mstkdnet": {"runs": {"2": {}}}}
            }
        },
    }
    assert finished_runs(report) == (
        "**Partial study: 3 of 4 runs finished and evaluated (baseline seed 1, 2; mstkdnet seed 2).**"
    )
    report["tests"]["in_distribution"]["arms"]["mstkdnet"]["runs"]["1"] = {}
    assert finished_runs(report) == "Every run finished."
