"""A study's data on disk: phantoms generated once, training sources pooled, one split for every arm.

Everything lives under the study folder's `data/` and `splits/`; a recipe file beside each
generated set records what it holds, so a restarted study reuses it and a changed recipe is
refused instead of silently mixed.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Tuple

from mstkd.cases import Case, discover_cases
from mstkd.errors import MSTKDError
from mstkd.files import write_text
from mstkd.phantom.generate import write_phantoms
from mstkd.splits import random_split, read_split, write_split
from mstkd.study.config import PhantomRecipe, Source, StudyConfig
from mstkd.typed_config import from_mapping, to_mapping

POOL = "train-pool"


@dataclass(frozen=True)
class CaseSet:
    """The usable cases of one source (four sequences and a segmentation), and where they live."""

    root: Path
    cases: Tuple[Case, ...]

    @property
    def ids(self) -> Tuple[str, ...]:
        return tuple(c.case_id for c in self.cases)


@dataclass(frozen=True)
class StudyCases:
    """The pooled training root with its train/val split files, and every test set's cases."""

    train_root: Path
    train_split: Path
    val_split: Path
    tests: Dict[str, CaseSet]


def prepare_data(study: StudyConfig, folder: Path) -> StudyCases:
    """Generate what is missing, pool the training sources, write (or reuse) the split."""
    data = folder / "data"
    training = [materialise(study, source, data / f"train-{k}") for k, source in enumerate(study.data.train)]
    pool = training[0] if len(training) == 1 else _pool(training, data / POOL)
    tests = {
        name: materialise(study, source, data / f"test-{name}") for name, source in study.data.test.items()
    }
    _refuse_leaks(pool, tests)
    train_split, val_split = _split(study, pool, folder / "splits")
    return StudyCases(pool.root, train_split, val_split, tests)


def materialise(study: StudyConfig, source: Source, generated: Path) -> CaseSet:
    """The cases of a source: a folder (only those its split file lists), or phantoms made in `generated`."""
    if source.phantoms is not None:
        return _usable(_generate(source.phantoms, generated))
    cases = _usable(study.path(source.root))
    if source.split is None:
        return cases
    wanted = set(read_split(study.path(source.split), known_ids=cases.ids))
    return CaseSet(cases.root, tuple(c for c in cases.cases if c.case_id in wanted))


def _generate(phantoms: PhantomRecipe, root: Path) -> Path:
    """Phantoms of a recipe in `root`, generated unless the recipe file beside says they are there already.

    The recorded recipe is read back through the current defaults, so that a setting added to the
    code since (at its default) is no difference.
    """
    marker = root.with_name(root.name + ".json")
    recipe = to_mapping(phantoms)
    if marker.is_file():
        written = to_mapping(from_mapping(PhantomRecipe, json.loads(marker.read_text()), str(marker)))
        if written != recipe:
            raise MSTKDError(
                f"{root} holds phantoms of another recipe ({written}, not {recipe}); the study config "
                "changed. Use a new --out folder, or restore the recipe."
            )
        return root
    if root.exists():
        shutil.rmtree(root)  # a generation killed midway, in the study's own folder
    write_phantoms(root, show_progress=False, **recipe)
    write_text(marker, json.dumps(recipe))
    return root


def _usable(root: Path) -> CaseSet:
    discovery = discover_cases(root)
    cases = tuple(c for c in discovery.cases if not c.missing and c.segmentation is not None)
    if not cases:
        raise MSTKDError(
            f"No case under {root} has all four sequences and a segmentation.\n{discovery.summary()}"
        )
    return CaseSet(root, cases)


def _pool(sources: list, root: Path) -> CaseSet:
    """One folder of links to every source's files; each case id gets its source's number in front."""
    if not root.exists():
        building = root.with_name(root.name + ".partial")
        if building.exists():
            shutil.rmtree(building)  # links only, left by a study killed midway
        for number, source in enumerate(sources):
            for case in source.cases:
                case_folder = building / f"{number}-{case.case_id}"
                case_folder.mkdir(parents=True)
                for path in (*case.sequences.values(), case.segmentation):
                    os.symlink(path.resolve(), case_folder / f"{number}-{path.name}")
        building.rename(root)
    return _usable(root)


def _refuse_leaks(pool: CaseSet, tests: Dict[str, CaseSet]) -> None:
    """A test case that is also a training case would flatter every arm: refuse it."""
    training = {c.segmentation.resolve() for c in pool.cases}
    for name, test in tests.items():
        shared = [c.case_id for c in test.cases if c.segmentation.resolve() in training]
        if shared:
            raise MSTKDError(
                f"Test set '{name}' shares {len(shared)} case(s) with the training sources "
                f"(e.g. {shared[0]}); give the sources split files that keep them apart."
            )


def _split(study: StudyConfig, pool: CaseSet, folder: Path) -> Tuple[Path, Path]:
    """The train and val split files every arm reads; a random split is drawn once and kept."""
    split = study.data.split
    train_file, val_file = folder / "train.txt", folder / "val.txt"
    if split.train is not None:
        train = read_split(study.path(split.train), known_ids=pool.ids)
        val = read_split(study.path(split.val), known_ids=pool.ids)
    else:
        drawn = random_split(pool.ids, fractions=(*split.fractions, 0.0), seed=split.seed)
        train, val = drawn.train, drawn.val
    if train_file.is_file() and (read_split(train_file), read_split(val_file)) != (train, val):
        raise MSTKDError(
            f"The split in {folder} differs from the one the study config gives now; the runs there were "
            "trained on it. Use a new --out folder, or restore the config."
        )
    if not train or not val:
        raise MSTKDError(
            f"The split leaves {len(train)} training and {len(val)} validation case(s); need both."
        )
    write_split(train_file, train, comment="training cases of every arm")
    write_split(val_file, val, comment="validation cases of every arm (best-model choice)")
    return train_file, val_file
