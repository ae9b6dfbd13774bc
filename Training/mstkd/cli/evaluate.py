"""`mstkd evaluate`: score predicted label maps against ground truth (Dice, HD95 per region)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mstkd.conventions import DEFAULT_LABELS, LABEL_CONVENTIONS
from mstkd.metrics import DEFAULT_METRIC_CONVENTION, METRIC_CONVENTIONS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `evaluate` subcommand."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score predicted label maps against ground truth (Dice, HD95 per region)",
        description="Score <PRED_DIR>/<case_id>.nii.gz against the segmentations of GT_DIR "
        "(any BraTS/FeTS layout or loose <case>_seg files). Missing predictions are penalised "
        "as empty ones, with a warning.",
    )
    parser.add_argument("--gt", required=True, metavar="GT_DIR", help="folder with the ground truth cases")
    parser.add_argument("--pred", required=True, metavar="PRED_DIR", help="folder with <case_id>.nii.gz")
    parser.add_argument(
        "--convention",
        default=DEFAULT_METRIC_CONVENTION,
        choices=sorted(METRIC_CONVENTIONS),
        help=f"how empty masks are scored (default {DEFAULT_METRIC_CONVENTION}): "
        + "; ".join(f"{c.name}: {c.description}" for c in METRIC_CONVENTIONS.values()),
    )
    parser.add_argument(
        "--labels",
        default=DEFAULT_LABELS,
        choices=sorted(LABEL_CONVENTIONS),
        help=f"label values of the maps (default {DEFAULT_LABELS}; brats2023 and brats2024 use 3 for ET)",
    )
    parser.add_argument(
        "--json", type=Path, metavar="OUT.json", help="write per-case scores and means as JSON"
    )
    parser.add_argument("--csv", type=Path, metavar="OUT.csv", help="write per-case scores as CSV")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace --json/--csv files that mstkd did not write"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the table, write the requested files."""
    from mstkd.evaluation.folders import evaluate_folders, evaluation_inputs, is_our_report
    from mstkd.files import check_distinct, check_replaceable, check_writable, write_together

    outputs = {"--json": args.json, "--csv": args.csv}
    check_distinct(outputs, evaluation_inputs(args.gt, args.pred))
    for path in filter(None, outputs.values()):
        check_replaceable(path, is_our_report, args.overwrite, "report")
        check_writable(Path(path).parent)
    result = evaluate_folders(
        args.gt,
        args.pred,
        args.convention,
        args.labels,
        warn=lambda message: print(f"mstkd evaluate: warning: {message}", file=sys.stderr),
    )
    print(result.table())
    reports = {args.json: result.json_text, args.csv: result.csv_text}
    written = write_together({path: text().encode("utf-8") for path, text in reports.items() if path})
    for path in written:
        print(f"Wrote {path}")
    return 0
