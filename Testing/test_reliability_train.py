"""`mstkd train` against bad requests and faults: one line, exit 2, no run folder, no run lost.

Each row runs the command in a fresh folder holding a config for the tiny model on phantoms and
a copy of a finished real run, and checks the exit status, the first line of the message, and
that the folder is byte for byte as before: a failed command leaves no run folder behind, and a
finished run is neither replaced nor mixed with another.
"""

from __future__ import annotations

import errno
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from faults import Row, check_row, check_table, fail_when_flushed, read_only, run_command

from mstkd.checkpoint import load_checkpoint, save_checkpoint
from mstkd.training.run import RunFiles

TINY = Path(__file__).resolve().parents[1] / "Training" / "configs" / "tiny.yaml"


@dataclass
class Training:
    """A folder with config.yaml (tiny model, phantoms) and run/ (a finished two-step run)."""

    folder: Path

    @property
    def config(self) -> str:
        return str(self.folder / "config.yaml")

    @property
    def run(self) -> Path:
        return self.folder / "run"

    def path(self, name: str) -> Path:
        return self.folder / name

    def new(self, *more: str) -> list:
        """Train the config into a new folder (what a row then makes wrong)."""
        return ["--config", self.config, "--out", str(self.path("new")), *more]

    def resume(self, *more: str) -> list:
        return ["--resume", "--out", str(self.run), *more]

    def write(self, name: str, data) -> str:
        path = self.path(name)
        (path.write_bytes if isinstance(data, bytes) else path.write_text)(data)
        return str(path)


@pytest.fixture
def training(phantom_root, tiny_model_file, tmp_path) -> Training:
    setting = Training(tmp_path / "training")
    setting.folder.mkdir()
    shutil.copytree(tiny_model_file.parent, setting.run)
    settings = f"data:\n  root: {phantom_root}\n  workers: 0\n  split_fractions: [0.67, 0.33, 0]\n"
    Path(setting.config).write_text(TINY.read_text() + settings + "train:\n  steps: 1\n  val_subsets: all\n")
    return setting


class Unpicklable:
    """What a malicious state.pt holds: an object whose unpickling would run a command."""

    def __reduce__(self):
        return (print, ("this must never run",))


def malicious_state(t: Training) -> list:
    torch.save({"step": 2, "payload": Unpicklable()}, RunFiles(t.run).state)
    return t.resume()


def flipped_weight(t: Training) -> list:
    weights = RunFiles(t.run).weights
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    return t.resume()


def checkpoint_a_step_ahead(t: Training) -> list:
    weights = RunFiles(t.run).weights
    checkpoint = load_checkpoint(weights)
    metadata = {k: v for k, v in checkpoint.metadata.items() if not k.endswith("sha256")}
    save_checkpoint(weights, checkpoint.state_dict, {**metadata, "step": metadata["step"] + 1})
    return t.resume()


def truncated_state(t: Training) -> list:
    state = RunFiles(t.run).state
    state.write_bytes(state.read_bytes()[:100])
    return t.resume()


def not_a_run(t: Training) -> list:
    t.path("new").mkdir()
    (t.path("new") / "thesis.tex").write_text("my thesis\n")
    return t.new()


ROWS = [
    # Run folders that would be lost or mixed.
    Row(
        "out-holds-a-finished-run",
        lambda t: ["--config", t.config, "--out", str(t.run)],
        r".*run holds a training run; continue it with --resume, or add --overwrite",
    ),
    Row(
        "out-holds-other-files",
        not_a_run,
        r".*new is not empty and holds no mstkd run; give a new or empty folder",
    ),
    Row(
        "out-is-a-file",
        lambda t: ["--config", t.config, "--out", t.config],
        r"--out .*config.yaml is a file; give a folder for the run",
    ),
    Row(
        "overwrite-with-a-bad-request-keeps-the-run",
        lambda t: ["--config", t.config, "--out", str(t.run), "--overwrite", "--set", "train.stepz=1"],
        r"Unknown setting\(s\) train.stepz",
    ),
    Row(
        "resume-of-a-missing-folder",
        lambda t: ["--resume", "--out", str(t.path("none"))],
        r"There is no training run in .*none to resume \(no config.yaml\): nothing to resume",
    ),
    Row(
        "resume-of-a-folder-without-a-run",
        lambda t: (t.path("empty").mkdir(), ["--resume", "--out", str(t.path("empty"))])[1],
        r"There is no training run in .*empty to resume",
    ),
    Row(
        "resume-and-overwrite",
        lambda t: t.resume("--overwrite"),
        r"--resume continues the run in --out and --overwrite replaces it; give one of them",
    ),
    Row("resume-without-out", lambda t: ["--resume"], r"--resume needs --out"),
    Row(
        "resume-a-malicious-state",
        malicious_state,
        r"The training state .*state.pt holds objects other than tensors and plain values",
    ),
    Row(
        "resume-a-truncated-state",
        truncated_state,
        r"The training state .*state.pt cannot be read \(.*\): it is damaged or truncated",
    ),
    Row(
        "resume-altered-weights",
        flipped_weight,
        r"The weights in .*checkpoint.safetensors do not match the digest",
    ),
    Row(
        "resume-checkpoint-and-state-disagree",
        checkpoint_a_step_ahead,
        r".*checkpoint.safetensors \(step 3\) and .*state.pt \(step 2\) disagree",
    ),
    # Configs.
    Row("no-config", lambda t: ["--out", str(t.path("new"))], r"Give --config"),
    Row(
        "config-missing",
        lambda t: ["--config", str(t.path("none.yaml")), "--out", str(t.path("new"))],
        r"Config file not found: .*none.yaml",
    ),
    Row(
        "config-is-a-folder",
        lambda t: ["--config", str(t.run), "--out", str(t.path("new"))],
        r"The config .*run is a folder; pass a YAML file",
    ),
    Row(
        "config-bad-yaml",
        lambda t: [
            "--config",
            t.write("bad.yaml", "model:\n  width: [1, 2\ntrain: {}\n"),
            "--out",
            str(t.path("new")),
        ],
        r".*bad.yaml is not valid YAML: expected ',' or ']', but got ':' at line 3, column 6; fix the file",
    ),
    Row(
        "config-tab-indented",
        lambda t: ["--config", t.write("tabs.yaml", "model:\n\twidth: 4\n"), "--out", str(t.path("new"))],
        r".*tabs.yaml is not valid YAML: found character '\\t' that cannot start any token at line 2",
    ),
    Row(
        "config-binary",
        lambda t: ["--config", t.write("model.yaml", b"\xff\xfe\x00\x01"), "--out", str(t.path("new"))],
        r"Cannot read the config .*model.yaml as text",
    ),
    Row(
        "config-a-list",
        lambda t: ["--config", t.write("list.yaml", "- 1\n- 2\n"), "--out", str(t.path("new"))],
        r".*list.yaml must hold a mapping of sections",
    ),
    Row("unknown-setting", lambda t: t.new("--set", "train.stepz=3"), r"Unknown setting\(s\) train.stepz"),
    Row("no-steps", lambda t: t.new("--set", "train.steps=0"), r".*train.steps must be at least 1"),
    Row(
        "override-without-equals",
        lambda t: t.new("--set", "train.steps"),
        r"Override 'train.steps' must look like section.key=value",
    ),
    Row(
        "data-root-missing",
        lambda t: t.new("--set", f"data.root={t.path('none')}"),
        r"Folder not found: .*none",
    ),
    Row(
        "data-root-without-usable-cases",
        lambda t: t.new("--set", f"data.root={t.run}"),
        r".*run holds no image files",
    ),
    Row(
        "split-without-validation",
        lambda t: t.new("--set", "data.split_fractions=[1,0,0]"),
        r".*(no validation|validation)",
    ),
    Row(
        "labels-unknown",
        lambda t: t.new("--set", "data.labels=brats1999"),
        r"Unknown label convention 'brats1999'",
    ),
    # Faults while the run is written.
    Row(
        "disk-full-when-the-config-is-written",
        lambda t: t.new(),
        r"No space left on the disk of .*config.yaml",
        fault=fail_when_flushed(errno.ENOSPC, "config.yaml"),
    ),
    Row(
        "disk-full-at-the-first-checkpoint",
        lambda t: t.new(),
        r"No space left on the disk of .*checkpoint.safetensors",
        fault=fail_when_flushed(errno.ENOSPC, "checkpoint.safetensors"),
    ),
    Row(
        "read-only-at-the-training-state",
        lambda t: t.new(),
        r".*state.pt is on a read-only file system",
        fault=fail_when_flushed(errno.EROFS, "state.pt"),
    ),
]


@pytest.mark.parametrize("row", [row.param() for row in ROWS])
def test_train_refuses_with_one_line_and_loses_or_leaves_nothing(row, training, capsys, monkeypatch):
    out, err = check_row(row, "train", training, training.folder, capsys, monkeypatch)
    assert "this must never run" not in out + err


def test_the_table_holds_distinct_rows():
    check_table(ROWS, 25)


def test_a_read_only_run_folder_is_refused_before_anything_is_built(training, capsys):
    folder = training.path("runs")
    folder.mkdir()
    with read_only(folder):
        status, first, _, _ = run_command(
            capsys, "train", ["--config", training.config, "--out", folder / "r"]
        )
    assert status == 2 and "read-only file system" in first, first


def test_overwrite_starts_the_run_afresh_without_mixing_the_old_log(training, capsys):
    files = RunFiles(training.run)
    old_log = files.log.read_text()
    assert "step 2 epoch" in old_log
    status, first, out, _ = run_command(
        capsys, "train", ["--config", training.config, "--out", training.run, "--overwrite"]
    )
    assert status == 0, first
    log = files.log.read_text()
    assert "step 1 epoch" in log and "step 2 epoch" not in log
    assert load_checkpoint(files.weights).metadata["step"] == 1
    assert not list(training.run.glob(".*"))


def test_the_malicious_state_really_would_run_code_if_unpickled(training):
    """The row above is meaningful: plain pickle would call the payload."""
    malicious_state(training)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(RunFiles(training.run).state, weights_only=True)
