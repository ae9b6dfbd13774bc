"""A study's report: report.json (every number, per case), report.md (tables in paper order) and figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from mstkd.conventions import REGIONS, parse_subsets
from mstkd.experiment.summary import meta_networks, parameter_count
from mstkd.files import write_text
from mstkd.metrics import metric_convention
from mstkd.splits import read_split
from mstkd.study.config import StudyConfig
from mstkd.study.curves import TRAINING_LOSS, VALIDATION_DICE, read_curve
from mstkd.study.figures import plot_dice_per_subset, plot_training_curves
from mstkd.study.folder import StudyFolder
from mstkd.study.results import METRICS, ArmScores, compare, gather, seed_averages, subset_table
from mstkd.study.statistics import METHOD
from mstkd.typed_config import to_mapping

UNITS = {"dice": "Dice (%)", "hd95": "HD95 (mm)"}
SCALE = {"dice": 100.0, "hd95": 1.0}
MODEL_CHOSEN = {"best": "the one with the best validation Dice", "last": "the last step's"}


def write_report(
    study: StudyConfig, folder: StudyFolder, command: str, with_figures: bool = True
) -> Dict[str, Path]:
    """Write report.json, report.md and (unless told not to) the figures from every evaluation so far.

    Without figures, report.md links none, so that it never shows figures older than its tables.
    """
    report = build_report(study, folder, command)
    figures = _figures(study, folder, report) if with_figures else {}
    paths = {"json": folder.report_json, "markdown": folder.report_markdown, **figures}
    write_text(folder.report_json, json.dumps(report, indent=1) + "\n")
    markdown = render_markdown(report, {k: p.relative_to(folder.root) for k, p in figures.items()})
    write_text(folder.report_markdown, markdown)
    return paths


def build_report(study: StudyConfig, folder: StudyFolder, command: str) -> Dict[str, Any]:
    """Every number of the report as JSON-ready data, per-case scores included."""
    convention = metric_convention(study.evaluation.convention)
    subsets = [s.name for s in parse_subsets(study.evaluation.subsets)]
    results = gather(folder, convention.name)
    reference = study.reference_arm
    tests = {}
    for test in study.data.test:
        arms = {arm: results[test][arm] for arm in study.arms if arm in results.get(test, {})}
        tests[test] = {
            "cases": list(next(iter(arms.values())).cases) if arms else [],
            "arms": {arm: _arm_section(scores, subsets) for arm, scores in arms.items()},
            "comparisons": {
                arm: {"reference": reference, **compare(scores, arms[reference], subsets)}
                for arm, scores in arms.items()
                if arm != reference and reference in arms
            },
        }
    return {
        "study": study.name,
        "command": command,
        "convention": {"name": convention.name, "description": convention.description},
        "statistics": METHOD,
        "steps": study.steps,
        "seeds": list(study.seeds),
        "reference": reference,
        "model": study.evaluation.model,
        "subsets": subsets,
        "data": {
            "train_cases": _count(folder.splits / "train.txt"),
            "val_cases": _count(folder.splits / "val.txt"),
            "train_sources": [_source(s) for s in study.data.train],
            "tests": {name: _source(source) for name, source in study.data.test.items()},
        },
        "arms": {arm: _arm_description(study, arm) for arm in study.arms},
        "runs": _runs(study, folder),
        "tests": tests,
    }


def _arm_section(scores: ArmScores, subsets: Sequence[str]) -> Dict[str, Any]:
    return {
        "table": subset_table(scores, subsets),
        "seed_averages": {str(seed): row for seed, row in seed_averages(scores, subsets).items()},
        "runs": {str(seed): run for seed, run in scores.runs.items()},
    }


def _arm_description(study: StudyConfig, arm: str) -> Dict[str, Any]:
    experiment = study.experiment(arm, study.seeds[0])
    networks = meta_networks(experiment)
    return {
        "config": study.arms[arm].config,
        "set": list(study.arms[arm].set),
        "method": experiment.method,
        "patch": list(experiment.patch),
        "parameters": {role: parameter_count(network) for role, network in networks.items()},
    }


def _runs(study: StudyConfig, folder: StudyFolder) -> Dict[str, Dict[str, Any]]:
    """Each run's progress from its TensorBoard scalars: last step, best validation Dice, time per step."""
    runs: Dict[str, Dict[str, Any]] = {}
    for arm in study.arms:
        for seed in study.seeds:
            tensorboard = folder.run(arm, seed) / "tensorboard"
            loss, dice = read_curve(tensorboard, TRAINING_LOSS), read_curve(tensorboard, VALIDATION_DICE)
            if not loss.steps:
                continue
            best = int(np.argmax(dice.values)) if dice.values else None
            runs.setdefault(arm, {})[str(seed)] = {
                "last_step": loss.steps[-1],
                "best_validation_dice": dice.values[best] if best is not None else None,
                "best_step": dice.steps[best] if best is not None else None,
                "seconds_per_step": loss.seconds_per_step(),
            }
    return runs


def _source(source) -> Dict[str, Any]:
    return {k: v for k, v in to_mapping(source).items() if v is not None}


def _count(split: Path) -> Optional[int]:
    return len(read_split(split)) if split.is_file() else None


def _figures(study: StudyConfig, folder: StudyFolder, report: Dict[str, Any]) -> Dict[str, Path]:
    figures = {}
    for test, section in report["tests"].items():
        if not section["arms"]:
            continue
        dice = {
            arm: _seed_dice(arm_section, report["subsets"]) for arm, arm_section in section["arms"].items()
        }
        title = (
            f"{study.name}: test set '{test}', {len(section['cases'])} cases, {report['convention']['name']}"
        )
        figures[f"dice_{test}"] = plot_dice_per_subset(
            dice, report["subsets"], title, folder.figures / f"dice_per_subset_{test}.png"
        )
    runs = {
        arm: {seed: folder.run(arm, seed) for seed in study.seeds if folder.run(arm, seed).is_dir()}
        for arm in study.arms
    }
    runs = {arm: seeds for arm, seeds in runs.items() if seeds}
    if runs:
        title = f"{study.name}: training curves, {study.steps} steps per run"
        figures["curves"] = plot_training_curves(runs, title, folder.figures / "training_curves.png")
    return figures


def _seed_dice(arm_section: Dict[str, Any], subsets: Sequence[str]) -> np.ndarray:
    """(seed, subset, region) Dice, each seed's mean over the cases."""
    return np.array(
        [
            [
                [np.mean([run["scores"][c][s][r]["dice"] for c in run["scores"]]) for r in REGIONS]
                for s in subsets
            ]
            for run in arm_section["runs"].values()
        ]
    )


# -- markdown --------------------------------------------------------------------------------


def finished_runs(report: Dict[str, Any]) -> str:
    """Which arm-seed runs this report holds: all planned, or a partial study's list."""
    planned = len(report["arms"]) * len(report["seeds"])
    held: Dict[str, set] = {}
    for test in report["tests"].values():
        for arm, section in test["arms"].items():
            held.setdefault(arm, set()).update(section["runs"])
    count = sum(len(seeds) for seeds in held.values())
    if count == planned:
        return "Every run finished."
    listed = "; ".join(f"{arm} seed {', '.join(sorted(seeds, key=int))}" for arm, seeds in held.items())
    return f"**Partial study: {count} of {planned} runs finished and evaluated ({listed or 'none'}).**"


def render_markdown(report: Dict[str, Any], figures: Dict[str, Path]) -> str:
    """The report as markdown: set-up, per-subset tables, seeds, paired differences, figures."""
    data = report["data"]
    lines = [
        f"# Study: {report['study']}",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Metric convention: **{report['convention']['name']}** ({report['convention']['description']}).",
        "",
        f"Every arm trains for {report['steps']} steps with seeds {', '.join(map(str, report['seeds']))} "
        f"on the same {data['train_cases']} training and {data['val_cases']} validation cases; the model "
        f"evaluated is {MODEL_CHOSEN[report['model']]}. {finished_runs(report)} "
        f"Training sources: {'; '.join(json.dumps(s) for s in data['train_sources'])}.",
        "",
        f"Paired differences to the reference arm ({report['reference']}): {report['statistics']}. "
        "A case's value is its mean over the seeds both arms have; the 'average' row takes each case's "
        "mean over the subsets. The tests treat the trained models as fixed: the spread between seeds "
        "(table 'Each seed') is not in the p-values.",
        "",
        "| arm | method | config | overrides | patch | parameters (inference network) "
        "| parameters (all trained) |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm, about in report["arms"].items():
        params = about["parameters"]
        inference = params.get("network", params.get("student"))
        overrides = ", ".join(f"`{s}`" for s in about["set"])
        lines.append(
            f"| {arm} | {about['method']} | `{about['config']}` | {overrides} | "
            f"{'x'.join(map(str, about['patch']))} | {inference:,} | {sum(params.values()):,} |"
        )
    lines += _runs_table(report["runs"])
    for test, section in report["tests"].items():
        lines += _test_section(report, test, section, figures.get(f"dice_{test}"))
    if "curves" in figures:
        lines += ["", "## Training curves", "", f"![training curves of every arm]({figures['curves']})"]
    return "\n".join(lines) + "\n"


def _runs_table(runs: Dict[str, Dict[str, Any]]) -> List[str]:
    lines = [
        "",
        "| arm | seed | steps done | best validation Dice (step) | seconds per step (median) |",
        "|---|---|---|---|---|",
    ]
    for arm, seeds in runs.items():
        for seed, run in seeds.items():
            best = run["best_validation_dice"]
            best_text = f"{best:.3f} ({run['best_step']})" if best is not None else "-"
            rate = f"{run['seconds_per_step']:.2f}" if run["seconds_per_step"] is not None else "-"
            lines.append(f"| {arm} | {seed} | {run['last_step']} | {best_text} | {rate} |")
    return lines


def _test_section(
    report: Dict[str, Any], test: str, section: Dict[str, Any], figure: Optional[Path]
) -> List[str]:
    source = json.dumps(report["data"]["tests"][test])
    lines = ["", f"## Test set `{test}` ({len(section['cases'])} cases; {source})"]
    arms = section["arms"]
    if not arms:
        return [*lines, "", "No arm evaluated yet."]
    lines += ["", "Means over cases and seeds; subsets in the papers' column order."]
    for metric in METRICS:
        for region in REGIONS:
            key = f"{metric}_{region}"
            lines += ["", f"**{UNITS[metric]}, {region}**", "", "| subset | " + " | ".join(arms) + " |"]
            lines.append("|---" * (len(arms) + 1) + "|")
            for k, subset in enumerate([row["subset"] for row in next(iter(arms.values()))["table"]]):
                cells = [_number(metric, section_arm["table"][k][key]) for section_arm in arms.values()]
                lines.append(f"| {subset} | " + " | ".join(cells) + " |")
    lines += ["", "**Each seed (mean over cases and subsets)**", ""]
    header = [f"{UNITS[m].split()[0]} {r}" for m in METRICS for r in REGIONS]
    lines += ["| arm | seed | model step | " + " | ".join(header) + " |", "|---" * (len(header) + 3) + "|"]
    for arm, arm_section in arms.items():
        for seed, row in arm_section["seed_averages"].items():
            step = arm_section["runs"][seed]["step"]
            cells = [_number(m, row[f"{m}_{r}"]) for m in METRICS for r in REGIONS]
            lines.append(f"| {arm} | {seed} | {step} | " + " | ".join(cells) + " |")
    for arm, comparison in section["comparisons"].items():
        lines += _comparison(arm, comparison)
    if figure is not None:
        lines += ["", f"![Dice per subset per arm on '{test}']({figure})"]
    return lines


def _comparison(arm: str, comparison: Dict[str, Any]) -> List[str]:
    seeds = ", ".join(map(str, comparison["seeds"]))
    lines = ["", f"**{arm} minus {comparison['reference']}** (seeds {seeds}): mean difference [95% CI] p"]
    if not comparison["rows"]:
        return [*lines, "", "No seed evaluated by both arms yet."]
    lines.append("")
    columns = [(m, r) for m in METRICS for r in REGIONS]
    lines += ["| subset | " + " | ".join(f"{UNITS[m]} {r}" for m, r in columns) + " |"]
    lines.append("|---" * (len(columns) + 1) + "|")
    by_key = {(row["subset"], row["metric"], row["region"]): row for row in comparison["rows"]}
    for subset in dict.fromkeys(row["subset"] for row in comparison["rows"]):
        cells = [_difference(m, by_key[(subset, m, r)]) for m, r in columns]
        lines.append(f"| {subset} | " + " | ".join(cells) + " |")
    return lines


def _number(metric: str, value: float) -> str:
    return f"{SCALE[metric] * value:.1f}" if metric == "dice" else f"{value:.2f}"


def _difference(metric: str, row: Dict[str, Any]) -> str:
    scale = SCALE[metric]
    text = f"{scale * row['mean']:+.1f}"
    if row["ci"] is not None:
        text += f" [{scale * row['ci'][0]:+.1f}, {scale * row['ci'][1]:+.1f}]"
    return f"{text} p={row['p_value']:.2g}"
