"""`mstkd demo`: segment a generated phantom case with the bundled demo model, and score it."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from mstkd.cli.options import add_device, add_model

DEMO_SEED = 2026  # not one of the demo model's training seeds (1000 and up)
DEMO_CASE = 0
DEFAULT_SEQUENCES = "flair,t2"
DEFAULT_OUT = Path("mstkd-demo")


DESCRIPTION = f"""\
Generate a synthetic BraTS-like exam (seed {DEMO_SEED}, never seen in training), segment it from a
subset of its sequences (default FLAIR + T2) with a model (default: the bundled demo model), and
score the result against the phantom's ground truth. Writes into --out: the exam with its ground
truth (a BraTS 2021 case folder), labels.nii.gz, summary.json and preview.png (sequences used,
prediction and ground truth), then prints Dice per region, the regions the sequences cannot
support and where the files are.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `demo` subcommand."""
    parser = subparsers.add_parser(
        "demo",
        help="segment a generated phantom case with the bundled demo model",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default ./{DEFAULT_OUT})"
    )
    parser.add_argument(
        "--sequences",
        default=DEFAULT_SEQUENCES,
        help=f"sequences to segment from (default {DEFAULT_SEQUENCES})",
    )
    add_model(parser)
    add_device(parser)
    parser.add_argument(
        "--shape", default="240,240,155", metavar="X,Y,Z", help="phantom grid size (default the BraTS grid)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace files in --out that mstkd did not write"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Generate, segment, score, draw; print Dice and the files."""
    from mstkd.conventions import parse_subset
    from mstkd.figures import is_our_picture
    from mstkd.files import check_replaceable
    from mstkd.inference.events import TextWriter
    from mstkd.inference.output import CASE_OUTPUTS, check_outputs, write_result
    from mstkd.inference.report import save_segmentation_preview
    from mstkd.phantom import check_case_paths, generate_case, parse_size, write_case
    from mstkd.phantom.layout import DEFAULT_LAYOUT

    subset = parse_subset(args.sequences)
    shape = parse_size(args.shape)
    labels_path, summary_path, picture = (
        args.out / n for n in ("labels.nii.gz", "summary.json", "preview.png")
    )
    check_outputs(labels_path, summary_path, {}, args.overwrite, names=CASE_OUTPUTS)
    check_replaceable(picture, is_our_picture, args.overwrite, "picture")
    check_case_paths(DEMO_CASE, args.out, DEFAULT_LAYOUT, False, args.overwrite)
    started = time.perf_counter()
    progress = TextWriter(sys.stderr)

    from mstkd.inference.predictor import Predictor

    predictor = Predictor(args.model, args.device, progress=progress)
    print(f"generating a phantom exam ({'x'.join(str(s) for s in shape)}, seed {DEMO_SEED})", file=sys.stderr)
    case = generate_case(DEMO_SEED, DEMO_CASE, shape)
    folder = write_case(case, args.out, overwrite=args.overwrite)
    files = {s: next(folder.glob(f"*_{s}.nii.gz")) for s in subset.sequences}

    result = predictor.segment(files, progress=progress, labels=case.convention)
    summary = write_result(result, labels_path, summary_path, extra={"dice": _dice(case, result)})
    save_segmentation_preview(
        {s: case.images[s] for s in subset.sequences}, result.labels, case.convention, picture, case.labels
    )
    for note in [*result.fallbacks, *result.warnings]:
        print(f"mstkd demo: warning: {note}", file=sys.stderr)

    dice = "  ".join(f"{region} {value:.3f}" for region, value in summary["dice"].items())
    volumes = "  ".join(f"{k} {v:.1f}" for k, v in summary["volumes_ml"].items())
    print(
        f"Segmented a phantom exam (seed {DEMO_SEED}, {'x'.join(str(s) for s in shape)}) from {subset.name} "
        f"with model '{result.model_name}' (sha256 {result.model_sha256[:12]}...) on {result.device} "
        f"in {time.perf_counter() - started:.1f} s."
    )
    print(f"Dice against the ground truth (brats-legacy): {dice}")
    print(f"Volumes (mL): {volumes}")
    for warning in summary["trust"]["warnings"]:
        print(f"Warning: {warning}")
    print("Files:")
    for what, path in (
        ("exam and ground truth", folder),
        ("label map", labels_path),
        ("summary", summary_path),
        ("picture", picture),
    ):
        print(f"  {what:<22} {path}")
    if predictor.entry is not None and predictor.entry.intended_use:
        print(f"Model '{predictor.entry.name}': {predictor.entry.intended_use}")
    return 0


def _dice(case, result) -> dict:
    """Dice of WT, TC and ET of the prediction against the phantom's ground truth."""
    from mstkd.conventions import label_convention
    from mstkd.imageio import image_to_array
    from mstkd.metrics import region_scores

    scores = region_scores(
        case.array("seg"),
        image_to_array(result.labels),
        label_convention(case.convention),
        case.labels.GetSpacing(),
    )
    return {region: round(score.dice, 4) for region, score in scores.items()}
