"""The files of a training run, and how its cases are chosen and split."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Tuple

from mstkd.cases import HELD_OUT_MARKER, Case, Discovery, discover_cases, name_a_few
from mstkd.errors import MSTKDError
from mstkd.experiment.sections import DataConfig
from mstkd.splits import PARTS, Split, random_split, read_split, write_split


@dataclass(frozen=True)
class RunFiles:
    """Where a run keeps its config, weights, state, logs and splits."""

    folder: Path

    @property
    def config(self) -> Path:
        return self.folder / "config.yaml"

    @property
    def weights(self) -> Path:
        """All networks of the latest checkpoint (teacher, student, discriminator)."""
        return self.folder / "checkpoint.safetensors"

    @property
    def state(self) -> Path:
        """Optimisers, scheduler, step and RNG of the latest checkpoint."""
        return self.folder / "state.pt"

    @property
    def student(self) -> Path:
        """The exported inference network of the latest checkpoint."""
        return self.folder / "student.safetensors"

    @property
    def best_student(self) -> Path:
        """The exported inference network with the best validation Dice."""
        return self.folder / "best_student.safetensors"

    @property
    def log(self) -> Path:
        return self.folder / "train.log"

    @property
    def tensorboard(self) -> Path:
        return self.folder / "tensorboard"

    @property
    def splits(self) -> Path:
        return self.folder / "splits"

    def split(self, part: str) -> Path:
        return self.splits / f"{part}.txt"

    def written(self) -> Tuple[Path, ...]:
        """Every file and folder of the run that exists (all written by the trainer)."""
        names = (self.config, self.weights, self.state, self.student, self.best_student, self.log)
        return tuple(p for p in (*names, self.tensorboard, self.splits) if p.exists())

    def holds_a_run(self) -> bool:
        """True when the folder holds a training run's files."""
        return any(p.exists() for p in (self.config, self.weights, self.state, self.log))

    def remove(self) -> None:
        """Delete the run's own files and folders (nothing else the folder may hold)."""
        for path in self.written():
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


def check_resumable(files: RunFiles) -> None:
    """Refuse --resume where there is no run to continue."""
    if not files.folder.is_dir() or not files.config.is_file():
        raise MSTKDError(
            f"There is no training run in {files.folder} to resume (no {files.config.name}): nothing to "
            "resume. Start it without --resume."
        )


def check_new_run(files: RunFiles, overwrite: bool) -> None:
    """Refuse to start a run in a folder that holds a run or other files, unless `overwrite`."""
    folder = files.folder
    if folder.exists() and not folder.is_dir():
        raise MSTKDError(f"--out {folder} is a file; give a folder for the run.")
    if overwrite or not folder.exists() or not any(folder.iterdir()):
        return
    if files.holds_a_run():
        raise MSTKDError(
            f"{folder} holds a training run; continue it with --resume, or add --overwrite to start it "
            "afresh (its weights, state and log are replaced)."
        )
    raise MSTKDError(
        f"{folder} is not empty and holds no mstkd run; give a new or empty folder with --out (or add "
        "--overwrite to write the run among its files)."
    )


def usable_cases(data: DataConfig) -> Tuple[Discovery, Tuple[Case, ...]]:
    """The cases under data.root that have all four sequences and a segmentation."""
    if not data.root:
        raise MSTKDError(
            "Set data.root to a folder of cases (any BraTS/FeTS layout or `mstkd phantom` output)."
        )
    discovery = discover_cases(data.root)
    usable = tuple(c for c in discovery.cases if not c.missing and c.segmentation is not None)
    held_out = [c.case_id for c in usable if c.folder is not None and (c.folder / HELD_OUT_MARKER).is_file()]
    if held_out:
        raise MSTKDError(
            f"{data.root} holds held-out test cases ({name_a_few(held_out)}, written by "
            "`mstkd phantom --generator ood`); never train or validate on them. Point data.root at "
            "training phantoms."
        )
    if not usable:
        raise MSTKDError(
            f"No case under {data.root} has all four sequences and a segmentation; training needs both.\n"
            + discovery.summary()
        )
    return discovery, usable


def choose_split(data: DataConfig, cases: Tuple[Case, ...]) -> Split:
    """Split files when given (train and val at least), else a seeded random split."""
    ids = [c.case_id for c in cases]
    files = (data.train_split, data.val_split, data.test_split)
    if any(files):
        if not (data.train_split and data.val_split):
            raise MSTKDError("Give both data.train_split and data.val_split (data.test_split is optional).")
        return Split(*(read_split(f, known_ids=ids) if f else () for f in files))
    return random_split(ids, fractions=data.split_fractions, seed=data.split_seed)


def write_splits(files: RunFiles, split: Split) -> None:
    """Record the split beside the run, so evaluation uses the same test cases."""
    for part in PARTS:
        write_split(files.split(part), getattr(split, part), comment=f"{part} cases of this run")


def select(cases: Tuple[Case, ...], ids: Tuple[str, ...]) -> Tuple[Case, ...]:
    """The cases with these ids, in the ids' order."""
    by_id = {c.case_id: c for c in cases}
    return tuple(by_id[i] for i in ids)
