"""`mstkd evaluate-model`: the 15-subset protocol for one model file, tables in the paper's order."""

from __future__ import annotations

import argparse
from pathlib import Path

from mstkd.cli.options import add_device, add_mirror_axes
from mstkd.conventions import LABEL_RULES, PROTOCOLS, REFERENCE_PROTOCOL
from mstkd.metrics import DEFAULT_METRIC_CONVENTION, METRIC_CONVENTIONS, REFERENCE_CODE_CONVENTION

EVERY_SUBSET = "all"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `evaluate-model` subcommand."""
    parser = subparsers.add_parser(
        "evaluate-model",
        help="evaluate a model file on the 15-subset protocol",
        description=(
            "Segment every case of DATA (restricted to --split) from each requested subset of sequences, "
            "score WT/TC/ET (Dice, HD95) and write tables in the papers' column order (table.md, table.csv, "
            "table.json) and per-case scores (cases.csv). --protocol whole-volume (default): sliding windows "
            "over the whole brain, the model's own label rule. --protocol reference: the MST-KDNet code's "
            "scoring (one centre crop of the model's patch, each channel thresholded at 0.5, the "
            "mstkdnet-ref convention unless --convention says otherwise). "
            "--model-out writes a copy of the model file that carries the per-subset Dice table in its "
            "metadata, from which `mstkd segment` tells which regions the given sequences can support, "
            "and the output settings (label rule, clean-up, mirroring) the table was measured with."
        ),
    )
    parser.add_argument(
        "--checkpoint", type=Path, required=True, help="model file (e.g. a run's student.safetensors)"
    )
    parser.add_argument("--data", type=Path, required=True, help="folder of cases, any supported layout")
    parser.add_argument(
        "--split", type=Path, help="file of case ids to evaluate (default: every case in --data)"
    )
    parser.add_argument(
        "--subsets",
        default=EVERY_SUBSET,
        help="'all' for the 15 subsets of the protocol, or a ';'-separated list such as 'flair,t2;t1ce'",
    )
    parser.add_argument("--protocol", default=PROTOCOLS[0], choices=PROTOCOLS, help=f"default {PROTOCOLS[0]}")
    parser.add_argument(
        "--convention",
        choices=sorted(METRIC_CONVENTIONS),
        help=f"metric convention (default {DEFAULT_METRIC_CONVENTION}; "
        f"{REFERENCE_CODE_CONVENTION} with --protocol {REFERENCE_PROTOCOL})",
    )
    parser.add_argument(
        "--label-rule",
        choices=LABEL_RULES,
        help="how probabilities become labels (default: the rule recorded in the model file)",
    )
    parser.add_argument(
        "--et-min-voxels",
        type=int,
        help="relabel as NCR an enhancing tumour under this many voxels (default: the model file's; 0 = off)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("evaluation"), help="output folder (default ./evaluation)"
    )
    add_mirror_axes(parser)
    add_device(parser)
    parser.add_argument("--overlap", type=float, default=0.5, help="sliding-window overlap (default 0.5)")
    parser.add_argument(
        "--model-out",
        type=Path,
        metavar="MODEL.safetensors",
        help="also write a copy of the model carrying this per-subset Dice table as its validation",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace files in --out and a --model-out file that mstkd did not write",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the markdown table, write the files."""
    from mstkd.cases import discover_cases
    from mstkd.conventions import SUBSETS, parse_subsets
    from mstkd.devices import resolve_device
    from mstkd.errors import MSTKDError
    from mstkd.evaluation.protocol import TABLE_FILES, evaluate_model, is_our_table
    from mstkd.files import check_replaceable, check_writable
    from mstkd.inference.model_file import load_trained_model
    from mstkd.metrics import metric_convention
    from mstkd.progress import progress
    from mstkd.splits import read_split

    reference = args.protocol == REFERENCE_PROTOCOL
    if reference and (args.label_rule or args.et_min_voxels is not None or args.mirror_axes is not None):
        raise MSTKDError(
            "--protocol reference scores as the MST-KDNet code does (each channel at 0.5, no clean-up); "
            "drop --label-rule, --et-min-voxels and --mirror-axes, or use --protocol whole-volume."
        )
    convention = metric_convention(
        args.convention or (REFERENCE_CODE_CONVENTION if reference else DEFAULT_METRIC_CONVENTION)
    )
    for name in TABLE_FILES:
        check_replaceable(args.out / name, is_our_table, args.overwrite, "results table")
    check_writable(args.out)
    if args.model_out is not None:
        from mstkd.evaluation.validation import check_model_out

        check_model_out(args.checkpoint, args.model_out, args.overwrite)
        check_writable(args.model_out.parent)
    subsets = SUBSETS if args.subsets.strip().lower() == EVERY_SUBSET else parse_subsets(args.subsets)
    discovery = discover_cases(args.data)
    cases = [c for c in discovery.cases if not c.missing and c.segmentation is not None]
    if args.split is not None:
        wanted = set(read_split(args.split, known_ids=[c.case_id for c in cases]))
        cases = [c for c in cases if c.case_id in wanted]
    if not cases:
        raise MSTKDError(
            f"No case with four sequences and a segmentation to evaluate.\n{discovery.summary()}"
        )
    device = resolve_device(args.device)
    model = load_trained_model(args.checkpoint, device).with_output(
        label_rule=args.label_rule, et_min_voxels=args.et_min_voxels, mirror_axes=args.mirror_axes
    )
    bar = progress(range(len(cases)), "cases", total=len(cases))
    ticks = iter(bar)
    result = evaluate_model(
        model,
        cases,
        subsets,
        convention,
        device,
        split=str(args.split) if args.split else f"all cases in {args.data}",
        overlap=args.overlap,
        on_case=lambda case_id: next(ticks, None),
        protocol=args.protocol,
    )
    paths = result.write(args.out)
    print(result.markdown())
    print(f"Wrote {', '.join(str(p) for p in paths.values())}")
    if args.model_out is not None:
        from mstkd.evaluation.validation import validation_table, write_model_with_validation

        digest = write_model_with_validation(
            args.checkpoint, validation_table(result), args.model_out, model.output, args.overwrite
        )
        print(f"Wrote {args.model_out} (sha256 {digest}): the model with this table as its validation")
    return 0
