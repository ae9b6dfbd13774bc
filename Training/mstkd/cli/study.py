"""`mstkd study`: train several arms with identical data, budget and seeds, evaluate and compare them."""

from __future__ import annotations

import argparse
from pathlib import Path

from mstkd.metrics import METRIC_CONVENTIONS

DESCRIPTION = """\
Train every arm of STUDY.yaml (an experiment config plus overrides each: the modality-dropout
baseline, MST-KDNet, its ablations, MAG-MS, ...) at every seed on the same data, split and number
of steps; evaluate each on the subsets of sequences of every named test set; write report.md,
report.json and figures into --out: per-subset Dice and HD95 tables in the papers' order, each
arm's paired per-case difference to the reference arm (Wilcoxon signed-rank test, bootstrap 95%
confidence interval of the mean difference) per subset and over all subsets, Dice per subset per
arm, and the training curves of all arms.

Resumable: the same command continues a killed or stopped study where it stopped; finished runs
and evaluations are kept. --arm runs only the named arms (repeatable), so that arms can run on
different machines; copy their runs/ and evaluations/ folders into one --out and gather them with
--report-only. The report names its metric convention. The format of STUDY.yaml is in the
docstring of mstkd.study.config and in Resources/studies/.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `study` subcommand."""
    parser = subparsers.add_parser(
        "study",
        help="train and compare several arms with the same data, budget and seeds",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, required=True, help="study YAML")
    parser.add_argument("--out", type=Path, required=True, help="study folder (created, or continued)")
    parser.add_argument(
        "--arm", action="append", dest="arms", metavar="NAME", help="run only this arm (repeatable)"
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="train and evaluate nothing: write the report from the evaluations in --out",
    )
    parser.add_argument(
        "--convention",
        choices=sorted(METRIC_CONVENTIONS),
        help="metric convention (default: the study's evaluation.convention)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the study and say where its report is."""
    from mstkd.study.config import load_study
    from mstkd.study.runner import run_study

    study = load_study(args.config, args.convention)
    command = f"mstkd study --config {args.config} --out {args.out}"
    if args.convention:
        command += f" --convention {args.convention}"
    paths = run_study(study, args.out, command, arms=args.arms, report_only=args.report_only)
    if paths is not None:
        print(f"Report: {paths['markdown']} (all numbers, per case: {paths['json']})")
    return 0
