"""One arm at one seed: trained through the project's trainer, then scored on every test set.

Both halves are resumable: a run folder with a checkpoint resumes from it, a finished one is
left alone, and an evaluation file of the same model file is not computed twice.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable, Dict, Mapping

import yaml

from mstkd.conventions import parse_subsets
from mstkd.devices import resolve_device
from mstkd.errors import MSTKDError
from mstkd.evaluation.protocol import evaluate_model
from mstkd.experiment import ExperimentConfig, experiment_from_mapping
from mstkd.files import sha256_of, write_text
from mstkd.inference.model_file import load_trained_model
from mstkd.metrics import metric_convention
from mstkd.study.config import StudyConfig
from mstkd.study.data import CaseSet, StudyCases
from mstkd.training.run import RunFiles
from mstkd.training.state import load_training_state
from mstkd.training.trainer import Trainer
from mstkd.typed_config import to_mapping

Say = Callable[[str], None]

# Where the data of every arm comes from; the study sets them, so a moved study folder still resumes.
_STUDY_PATHS = ("root", "train_split", "val_split", "test_split")


def arm_experiment(study: StudyConfig, cases: StudyCases, arm: str, seed: int) -> ExperimentConfig:
    """The experiment of `arm` at `seed` on the study's pooled data and split."""
    data = {
        "root": str(cases.train_root),
        "train_split": str(cases.train_split),
        "val_split": str(cases.val_split),
        "test_split": None,
    }
    return study.experiment(arm, seed, {"data": data})


def train_arm(experiment: ExperimentConfig, run: Path, say: Say) -> bool:
    """Train (or resume, or skip) one run; False when a stop signal ended it early."""
    files = RunFiles(run)
    steps = experiment.train.steps
    if files.state.is_file():
        _refuse_other_config(experiment, files)
        done = int(load_training_state(files.state)["step"])
        if done >= steps:
            say(f"{run}: trained ({done} steps), kept")
            return True
        say(f"{run}: resuming at step {done} of {steps}")
        return Trainer(experiment, run, resume=True).run() >= steps
    if run.exists():
        shutil.rmtree(run)  # killed before its first checkpoint: nothing to keep
    say(f"{run}: training {steps} steps")
    return Trainer(experiment, run).run() >= steps


def evaluate_arm(study: StudyConfig, run: Path, test: str, cases: CaseSet, out: Path, say: Say) -> None:
    """Score the run's model on every case and subset of a test set, unless `out` holds just that."""
    files = RunFiles(run)
    model_path = files.best_student if study.evaluation.model == "best" else files.student
    sha256 = sha256_of(model_path)
    evaluation = study.evaluation
    subsets = parse_subsets(evaluation.subsets)
    settings = {
        "cases": list(cases.ids),
        "subsets": [s.name for s in subsets],
        "overlap": evaluation.overlap,
        "bf16": evaluation.bf16,
    }
    if out.is_file():
        written = json.loads(out.read_text())
        if (written["sha256"], written.get("settings")) == (sha256, settings):
            return
    say(f"{run}: evaluating on '{test}' ({len(cases.cases)} cases)")
    device = resolve_device(study.device)
    model = load_trained_model(model_path, device, expected_sha256=sha256)
    result = evaluate_model(
        model,
        cases.cases,
        subsets,
        metric_convention(evaluation.convention),
        device,
        split=f"test set '{test}' ({cases.root})",
        overlap=evaluation.overlap,
        bf16=evaluation.bf16,
    )
    scores: Dict[str, Dict[str, Dict[str, Dict[str, float]]]] = {}
    for score in result.scores:
        scores.setdefault(score.case_id, {})[score.subset.name] = {
            region: value.values() for region, value in score.regions.items()
        }
    written = {
        "test": test,
        "convention": evaluation.convention,
        "model": model_path.name,
        "sha256": sha256,
        "step": model.metadata.get("step"),
        "settings": settings,
        "scores": scores,
    }
    write_text(out, json.dumps(written))


def _refuse_other_config(experiment: ExperimentConfig, files: RunFiles) -> None:
    """A run folder trained under another config is not this arm: say which settings differ.

    The recorded config is read back through the current defaults, so that a setting added to the
    code since (at its default) is no difference.
    """
    try:
        recorded = _flat(to_mapping(experiment_from_mapping(yaml.safe_load(files.config.read_text()))))
    except MSTKDError as error:
        raise MSTKDError(f"{files.config} cannot be read as an experiment any more ({error})") from None
    wanted = _flat(to_mapping(experiment))
    differ = sorted(k for k in recorded.keys() | wanted.keys() if recorded.get(k) != wanted.get(k))
    if differ:
        raise MSTKDError(
            f"{files.folder} was trained with other settings ({', '.join(differ[:5])}); the study config "
            "changed since. Use a new --out folder, or restore the config."
        )


def _flat(mapping: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    flat: Dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{name}."))
        elif name not in {f"data.{k}" for k in _STUDY_PATHS}:
            flat[name] = value
    return flat
