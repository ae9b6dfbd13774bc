"""A study config: arms, data, split, training budget, seeds and evaluation, in one YAML file.

    name: cpu-phantoms
    reference: baseline            # the arm every other arm is compared with (default: the first)
    arms:                          # name -> an experiment config plus `--set`-style overrides
      baseline: {config: ../Training/configs/small.yaml, set: [method=baseline]}
      mstkdnet: {config: ../Training/configs/small.yaml}
    set: [train.learning_rate=0.001]   # overrides for every arm, applied before the arm's own
    data:
      train:                       # one or more sources, pooled
        - phantoms: {cases: 40, seed: 1000, shape: [120, 120, 78]}   # generator: standard, class_maps: false
        - root: /data/BraTS2021    # a folder of cases; `split: FILE` keeps the listed ones
      split: {fractions: [0.9, 0.1], seed: 42}   # or {train: FILE, val: FILE} (case ids)
      test:                        # named test sets, never trained or validated on
        in_distribution: {phantoms: {cases: 10, seed: 2000, shape: [120, 120, 78]}}
        out_of_distribution: {phantoms: {cases: 10, seed: 9000, shape: [120, 120, 78], generator: ood}}
    steps: 600
    seeds: [1, 2]
    device: auto
    evaluation: {convention: brats-legacy, model: best, subsets: all15, overlap: 0.5, bf16: false}

Paths in the file are relative to the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from mstkd.conventions import parse_subsets
from mstkd.errors import MSTKDError
from mstkd.experiment import ExperimentConfig, experiment_from_mapping
from mstkd.metrics import DEFAULT_METRIC_CONVENTION, metric_convention
from mstkd.phantom.generators import DEFAULT_GENERATOR, get_generator
from mstkd.phantom.grid import BRATS_SIZE, check_size
from mstkd.phantom.layout import DEFAULT_LAYOUT, get_layout
from mstkd.typed_config import apply_overrides, from_mapping, merge, read_config_file

MODEL_CHOICES = ("best", "last")  # best validation Dice, or the last step
FOLDER = "folder"


@dataclass(frozen=True)
class PhantomRecipe:
    """`mstkd phantom` settings: cases 0..cases-1 of `seed` on a grid of `shape`, by `generator`."""

    cases: int
    seed: int
    shape: Tuple[int, int, int] = BRATS_SIZE
    layout: str = DEFAULT_LAYOUT
    generator: str = DEFAULT_GENERATOR
    class_maps: bool = False

    def __post_init__(self) -> None:
        if self.cases < 1 or self.seed < 0:
            raise ValueError(f"phantoms need cases >= 1 and seed >= 0 (got {self.cases}, {self.seed})")
        check_size(self.shape)
        get_layout(self.layout)
        get_generator(self.generator)


@dataclass(frozen=True)
class Source:
    """Cases from a folder (optionally only those a split file lists) or generated phantoms."""

    root: Optional[str] = None
    split: Optional[str] = None
    phantoms: Optional[PhantomRecipe] = None

    def __post_init__(self) -> None:
        if (self.root is None) == (self.phantoms is None):
            raise ValueError("give either root: FOLDER (with an optional split: FILE) or phantoms: {...}")
        if self.phantoms is not None and self.split is not None:
            raise ValueError("split: applies to a root: folder, not to generated phantoms")


@dataclass(frozen=True)
class StudySplit:
    """Training and validation cases of the pooled training sources: files, or a seeded random split."""

    fractions: Tuple[float, float] = (0.9, 0.1)
    seed: int = 42
    train: Optional[str] = None
    val: Optional[str] = None

    def __post_init__(self) -> None:
        if (self.train is None) != (self.val is None):
            raise ValueError("give both train: and val: split files, or neither")
        if min(self.fractions) < 0 or abs(sum(self.fractions) - 1) > 1e-6 or not self.fractions[1]:
            raise ValueError(f"fractions {list(self.fractions)} must be (train, val), > 0, summing to 1")


@dataclass(frozen=True)
class StudyData:
    """Training sources, their split, and the named test sets."""

    train: Tuple[Source, ...]
    test: Dict[str, Source]
    split: StudySplit = field(default_factory=StudySplit)

    def __post_init__(self) -> None:
        if not self.train:
            raise ValueError("list at least one training source under train:")
        if not self.test:
            raise ValueError("name at least one test set under test:, e.g. in_distribution: {phantoms: ...}")
        for source in self.train:
            if source.phantoms is not None and get_generator(source.phantoms.generator).held_out:
                raise ValueError(
                    f"the {source.phantoms.generator!r} phantoms are a held-out test set: "
                    "name them under test:, not train:"
                )


@dataclass(frozen=True)
class Evaluation:
    """How every arm is scored: the metric convention, which model file, which subsets."""

    convention: str = DEFAULT_METRIC_CONVENTION
    model: str = "best"
    subsets: str = "all15"
    overlap: float = 0.5
    bf16: bool = False

    def __post_init__(self) -> None:
        metric_convention(self.convention)
        parse_subsets(self.subsets)
        if self.model not in MODEL_CHOICES:
            raise ValueError(f"model must be one of {', '.join(MODEL_CHOICES)}, not {self.model!r}")


@dataclass(frozen=True)
class Arm:
    """One arm: an experiment config file and the overrides that make it this arm."""

    config: str
    set: Tuple[str, ...] = ()


@dataclass(frozen=True)
class StudyConfig:
    """Everything a study needs; `folder` is where relative paths in the file start."""

    name: str
    arms: Dict[str, Arm]
    data: StudyData
    steps: int
    seeds: Tuple[int, ...]
    reference: Optional[str] = None
    set: Tuple[str, ...] = ()
    device: str = "auto"
    evaluation: Evaluation = field(default_factory=Evaluation)
    folder: str = "."

    def __post_init__(self) -> None:
        if not self.arms:
            raise ValueError("name at least one arm under arms:")
        if self.reference is not None and self.reference not in self.arms:
            raise ValueError(f"reference {self.reference!r} is not one of the arms: {', '.join(self.arms)}")
        if self.steps < 1 or not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError("steps must be >= 1 and seeds a non-empty list of distinct numbers")

    @property
    def reference_arm(self) -> str:
        """The arm the others are compared with."""
        return self.reference or next(iter(self.arms))

    def path(self, text: str) -> Path:
        """A path of the file, resolved against the file's folder."""
        return (Path(self.folder) / Path(text).expanduser()).resolve()

    def experiment(
        self, arm: str, seed: int, settings: Mapping[str, Any] = MappingProxyType({})
    ) -> ExperimentConfig:
        """The experiment of `arm` at `seed`: its config, the study's and the arm's overrides, the budget.

        `settings` (nested sections, e.g. {"data": {"root": ...}}) go on top, unparsed, so that a
        path is never read as YAML.
        """
        chosen = self.arms[arm]
        # The budget is in steps: a config that counts epochs (magms.yaml, paper.yaml) gives them up.
        budget = {"train": {"steps": self.steps, "epochs": None, "seed": seed, "device": self.device}}
        try:
            mapping = apply_overrides(read_config_file(self.path(chosen.config)), (*self.set, *chosen.set))
            return experiment_from_mapping(merge(merge(mapping, budget), settings))
        except MSTKDError as error:
            raise MSTKDError(f"Arm '{arm}': {error}") from None


def load_study(path: Union[str, Path], convention: Optional[str] = None) -> StudyConfig:
    """Read a study YAML; `convention` replaces its evaluation's metric convention."""
    data = read_config_file(path)
    if FOLDER in data:
        raise MSTKDError(f"{path}: '{FOLDER}' is not a setting; paths are relative to the study file.")
    study = from_mapping(StudyConfig, {**data, FOLDER: str(Path(path).resolve().parent)}, "study")
    if convention is not None:
        study = replace(study, evaluation=replace(study.evaluation, convention=convention))
    for arm in study.arms:
        study.experiment(arm, study.seeds[0])  # a broken arm fails now, not hours into the study
    return study
