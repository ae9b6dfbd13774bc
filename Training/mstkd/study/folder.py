"""Where a study keeps its runs, evaluations, report and figures."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Tuple

from mstkd.errors import MSTKDError

SEED_PREFIX = "seed-"
# What a study writes first into its folder; a folder holding files but none of these is not a study's.
STUDY_ENTRIES = ("data", "splits", "runs", "evaluations")


@dataclass(frozen=True)
class StudyFolder:
    """The layout of a study's output folder (`--out`)."""

    root: Path

    def check_usable(self) -> None:
        """Refuse a file, or a folder of other files, as the study folder: its report would replace them."""
        if self.root.exists() and not self.root.is_dir():
            raise MSTKDError(f"--out {self.root} is a file; give a new folder, or the folder of a study.")
        foreign = self.root.is_dir() and any(self.root.iterdir())
        if foreign and not any((self.root / entry).is_dir() for entry in STUDY_ENTRIES):
            raise MSTKDError(
                f"--out {self.root} holds files that are not a study's (no {', '.join(STUDY_ENTRIES)} "
                "folder); give a new or empty folder, or the folder of the study to continue."
            )

    def run(self, arm: str, seed: int) -> Path:
        """The training run folder of one arm and seed."""
        return self.root / "runs" / arm / f"{SEED_PREFIX}{seed}"

    def evaluation(self, convention: str, test: str, arm: str, seed: int) -> Path:
        """The per-case scores of one arm and seed on one test set under one metric convention."""
        return self.root / "evaluations" / convention / test / arm / f"{SEED_PREFIX}{seed}.json"

    def evaluations(self, convention: str) -> Iterator[Tuple[str, str, int, Path]]:
        """(test set, arm, seed, file) of every evaluation written under `convention`."""
        for path in sorted((self.root / "evaluations" / convention).glob(f"*/*/{SEED_PREFIX}*.json")):
            yield path.parent.parent.name, path.parent.name, int(path.stem[len(SEED_PREFIX) :]), path

    @property
    def splits(self) -> Path:
        return self.root / "splits"

    @property
    def report_markdown(self) -> Path:
        return self.root / "report.md"

    @property
    def report_json(self) -> Path:
        return self.root / "report.json"

    @property
    def figures(self) -> Path:
        return self.root / "figures"
