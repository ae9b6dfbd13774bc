"""A study's figures: Dice per subset per arm, and every arm's training curves on one figure."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence

import numpy as np

from mstkd.conventions import REGIONS
from mstkd.study.curves import TRAINING_LOSS, VALIDATION_DICE, read_curve

DOTS_PER_INCH = 100
SEED_STYLES = ("-", "--", ":", "-.")
CURVES = ((VALIDATION_DICE, "validation Dice (mean of WT, TC, ET)"), (TRAINING_LOSS, "training loss (total)"))


def plot_dice_per_subset(dice: Dict[str, np.ndarray], subsets: Sequence[str], title: str, path: Path) -> Path:
    """One panel per region: each arm's Dice per subset, mean over seeds, bars spanning the seeds.

    `dice[arm]` is (seed, subset, region): each seed's mean over the test cases.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 8.5))
    axes = figure.subplots(len(REGIONS), 1, sharex=True)
    x = np.arange(len(subsets))
    width = 0.8 / max(len(dice), 1)
    for number, (arm, values) in enumerate(dice.items()):
        offset = x + (number - (len(dice) - 1) / 2) * width
        for r, (axis, region) in enumerate(zip(axes, REGIONS)):
            mean = values[:, :, r].mean(axis=0)
            spread = np.stack([mean - values[:, :, r].min(axis=0), values[:, :, r].max(axis=0) - mean])
            axis.bar(offset, mean, width, yerr=spread, capsize=1.5, label=arm, color=f"C{number}")
            axis.set_ylabel(f"Dice {region}")
            axis.set_ylim(0, 1)
            axis.grid(axis="y", alpha=0.3)
    axes[0].legend(ncol=min(len(dice), 4), fontsize=8, loc="lower right")
    axes[0].set_title(title, fontsize=10)
    axes[-1].set_xticks(x)
    axes[-1].set_xticklabels(subsets, rotation=45, ha="right", fontsize=8)
    figure.tight_layout()
    return _save(figure, path)


def plot_training_curves(runs: Dict[str, Dict[int, Path]], title: str, path: Path) -> Path:
    """Validation Dice and training loss against step for every arm (colour) and seed (line style)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 4.5))
    axes = figure.subplots(1, len(CURVES))
    for number, (arm, seeds) in enumerate(runs.items()):
        for k, (seed, run) in enumerate(sorted(seeds.items())):
            for axis, (tag, _) in zip(axes, CURVES):
                curve = read_curve(run / "tensorboard", tag)
                style = SEED_STYLES[k % len(SEED_STYLES)]
                axis.plot(
                    curve.steps,
                    curve.values,
                    style,
                    color=f"C{number}",
                    label=f"{arm} seed {seed}",
                    linewidth=1,
                )
    for axis, (_, label) in zip(axes, CURVES):
        axis.set_xlabel("step")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return _save(figure, path)


def _save(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DOTS_PER_INCH)
    return path
