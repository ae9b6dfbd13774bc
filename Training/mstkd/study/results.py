"""A study's evaluations gathered into arrays: per-subset tables and paired comparisons of arms.

Per-case scores are rounded to `DECIMALS` when read, so that every statistic in a report can be
recomputed exactly from the per-case numbers the report itself holds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from mstkd.conventions import REGIONS
from mstkd.evaluation.protocol import AVERAGE
from mstkd.study.folder import StudyFolder
from mstkd.study.statistics import paired_difference

DECIMALS = 6
# Every convention's two primary values (lesion-wise ones under brats-lesionwise); the evaluation
# files keep whatever else a convention gives beside them.
METRICS = ("dice", "hd95")


@dataclass(frozen=True)
class ArmScores:
    """One arm on one test set: each seed's evaluation (model identity and per-case scores)."""

    runs: Dict[int, Dict[str, Any]]

    @property
    def seeds(self) -> Tuple[int, ...]:
        return tuple(sorted(self.runs))

    @property
    def cases(self) -> Tuple[str, ...]:
        return tuple(sorted(next(iter(self.runs.values()))["scores"]))

    def array(self, subsets: Sequence[str], seeds: Sequence[int]) -> np.ndarray:
        """Scores as (case, subset, region, metric), averaged over `seeds`."""
        return np.mean([_as_array(self.runs[seed]["scores"], self.cases, subsets) for seed in seeds], axis=0)


def gather(folder: StudyFolder, convention: str) -> Dict[str, Dict[str, ArmScores]]:
    """Every evaluation under `convention`, by test set and arm (scores rounded to DECIMALS)."""
    found: Dict[str, Dict[str, Dict[int, Dict[str, Any]]]] = {}
    for test, arm, seed, path in folder.evaluations(convention):
        evaluation = json.loads(path.read_text())
        evaluation["scores"] = _rounded(evaluation["scores"])
        found.setdefault(test, {}).setdefault(arm, {})[seed] = evaluation
    return {test: {arm: ArmScores(runs) for arm, runs in arms.items()} for test, arms in found.items()}


def subset_table(scores: ArmScores, subsets: Sequence[str]) -> List[Dict[str, Any]]:
    """Mean Dice and HD95 per region for each subset and their average (cases and seeds averaged)."""
    means = scores.array(subsets, scores.seeds).mean(axis=0)  # (subset, region, metric)
    return [_row(name, values) for name, values in zip([*subsets, AVERAGE], [*means, means.mean(axis=0)])]


def seed_averages(scores: ArmScores, subsets: Sequence[str]) -> Dict[int, Dict[str, Any]]:
    """Each seed's mean over cases and subsets, to show how much the training seed moves an arm."""
    return {seed: _row(AVERAGE, scores.array(subsets, [seed]).mean(axis=(0, 1))) for seed in scores.seeds}


def compare(arm: ArmScores, reference: ArmScores, subsets: Sequence[str]) -> Dict[str, Any]:
    """Paired per-case differences to the reference on the seeds both have, per subset and overall.

    A case's value is its mean over those seeds; 'average' takes each case's mean over the subsets.
    """
    seeds = sorted(set(arm.seeds) & set(reference.seeds))
    if not seeds or arm.cases != reference.cases:
        return {"seeds": seeds, "rows": []}
    differences = arm.array(subsets, seeds) - reference.array(
        subsets, seeds
    )  # (case, subset, region, metric)
    per_subset = [*np.moveaxis(differences, 1, 0), differences.mean(axis=1)]
    rows = []
    for name, values in zip([*subsets, AVERAGE], per_subset):
        for r, region in enumerate(REGIONS):
            for m, metric in enumerate(METRICS):
                summary = paired_difference(values[:, r, m]).to_json()
                rows.append({"subset": name, "region": region, "metric": metric, **summary})
    return {"seeds": seeds, "rows": rows}


def _as_array(scores: Dict[str, Any], cases: Sequence[str], subsets: Sequence[str]) -> np.ndarray:
    return np.array(
        [[[[scores[c][s][r][m] for m in METRICS] for r in REGIONS] for s in subsets] for c in cases],
        dtype=float,
    )


def _row(subset: str, values: np.ndarray) -> Dict[str, Any]:
    """A table row from a (region, metric) array."""
    row: Dict[str, Any] = {"subset": subset}
    for m, metric in enumerate(METRICS):
        for r, region in enumerate(REGIONS):
            row[f"{metric}_{region}"] = float(values[r, m])
    return row


def _rounded(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return round(float(value), DECIMALS)
