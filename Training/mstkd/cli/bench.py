"""`mstkd bench`: speed and memory figures of training and inference; brain extraction on phantoms."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from mstkd.cli.options import add_device, add_model


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `bench model`, `bench inference` and `bench brain-extraction`."""
    parser = subparsers.add_parser(
        "bench", help="measure speed and memory of training and inference, and brain extraction"
    )
    tasks = parser.add_subparsers(dest="task", metavar="TASK", required=True)
    model = tasks.add_parser(
        "model",
        help="one full training step and one inference pass, fp32 and bf16",
        description=(
            "Measure one full training step of the config's method (all networks, all losses, backward, "
            "optimisers) and one inference pass of the student: median time over repeats and peak memory "
            "(CUDA max allocated on a GPU, process RSS on the CPU), in fp32 and in bf16 autocast where "
            "supported."
        ),
    )
    model.add_argument("--config", type=Path, required=True, help="experiment YAML")
    add_device(model)
    model.add_argument("--patch", help="override the patch, e.g. 64,64,64")
    model.add_argument("--repeats", type=int, default=5, help="timed repeats after one warm-up (default 5)")
    model.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    model.set_defaults(run=run_model)
    inference = tasks.add_parser(
        "inference",
        help="end-to-end latency and memory of `mstkd segment` on one phantom exam, per number of sequences",
        description=(
            "Segment one generated 240 x 240 x 155 phantom exam from 1, 2, 3 and 4 sequences (FLAIR; "
            "FLAIR+T2; FLAIR+T1ce+T2; all) as `mstkd segment` does (read, preprocess, infer, write the label "
            "map): median time over repeats after one warm-up, median per stage, peak process RSS, and CUDA "
            "max allocated on a GPU. --config times an untrained network of that config (paper-size timings "
            "without weights)."
        ),
    )
    source = inference.add_mutually_exclusive_group()
    add_model(source)
    source.add_argument("--config", type=Path, help="experiment YAML: time an untrained network of it")
    add_device(inference)
    inference.add_argument(
        "--repeats", type=int, default=3, help="timed repeats after one warm-up (default 3)"
    )
    inference.add_argument(
        "--shape", default="240,240,155", metavar="X,Y,Z", help="phantom size (default BraTS)"
    )
    inference.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    inference.set_defaults(run=run_inference)
    extraction = tasks.add_parser(
        "brain-extraction",
        help="tumour Dice with brain extraction vs on the same exam skull-stripped, on phantoms with a head",
        description=(
            "Generate clinical phantoms with a head (mstkd phantom --with-skull --native) and segment each "
            "three ways: as it comes (--brain-extraction auto), skull-stripped with the true brain mask, "
            "and as it comes without extraction. Prints what auto decided, the extracted brain mask's Dice "
            "to the true one and the tumour's Dice per region each way, then the JSON."
        ),
    )
    add_model(extraction)
    add_device(extraction)
    extraction.add_argument("--cases", type=int, default=3, help="number of phantoms (default 3)")
    extraction.add_argument("--seed", type=int, default=0, help="phantom seed (default 0)")
    extraction.add_argument(
        "--shape", default="240,240,155", metavar="X,Y,Z", help="phantom size (default BraTS)"
    )
    extraction.add_argument(
        "--sequences", default="all", metavar="LIST", help="sequences to segment from (default all)"
    )
    extraction.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    extraction.set_defaults(run=run_brain_extraction)


def run_model(args: argparse.Namespace) -> int:
    """Measure and print the table, then the JSON."""
    from mstkd.bench.model import bench_model
    from mstkd.devices import resolve_device
    from mstkd.experiment import load_experiment

    overrides = [f"patch=[{args.patch}]"] if args.patch else []
    experiment = load_experiment(args.config, overrides)
    device = resolve_device(args.device)
    rows = bench_model(experiment, device, max(1, args.repeats))
    print(
        f"mstkd bench model: {args.config} ({experiment.method}), patch {list(experiment.patch)}, "
        f"batch {experiment.train.batch_size}, device {device}"
    )
    print(f"{'task':<15}{'precision':<11}{'median s':>10}{'min s':>9}{'max s':>9}{'peak MiB':>11}  memory")
    for row in rows:
        m = row.measurement
        print(
            f"{row.task:<15}{row.precision:<11}{m.median_s:>10.3f}{m.min_s:>9.3f}{m.max_s:>9.3f}"
            f"{m.peak_memory_mib:>11.0f}  {m.memory_kind}"
        )
    report = {
        "config": str(args.config),
        "method": experiment.method,
        "patch": list(experiment.patch),
        "device": str(device),
        "rows": [
            {**dataclasses.asdict(r.measurement), "task": r.task, "precision": r.precision} for r in rows
        ],
    }
    print(json.dumps(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


def run_inference(args: argparse.Namespace) -> int:
    """Generate the exam, measure each subset, print the table, then the JSON."""
    import tempfile

    from mstkd.bench.inference import bench_inference, export_untrained, format_table, write_bench_case
    from mstkd.experiment import load_experiment
    from mstkd.inference.predictor import Predictor
    from mstkd.phantom import parse_size

    shape = parse_size(args.shape)
    with tempfile.TemporaryDirectory(prefix="mstkd-bench-") as scratch:
        folder = Path(scratch)
        model = args.model
        if args.config is not None:
            model = export_untrained(load_experiment(args.config), folder / "untrained.safetensors")
        predictor = Predictor(model, args.device)
        files = write_bench_case(folder / "exam", shape)
        rows = bench_inference(predictor, files, folder / "out", max(1, args.repeats))
    source = f"config {args.config} (untrained)" if args.config else f"model {predictor.name}"
    print(
        f"mstkd bench inference: {source}, sha256 {predictor.sha256[:12]}..., patch "
        f"{list(predictor.model.patch)}, model spacing {list(predictor.model.spacing)} mm, exam "
        f"{'x'.join(str(s) for s in shape)}, device {predictor.device}"
    )
    print(format_table(rows))
    report = {
        "model": str(args.config) if args.config else predictor.name,
        "untrained": args.config is not None,
        "sha256": predictor.sha256,
        "patch": list(predictor.model.patch),
        "spacing": list(predictor.model.spacing),
        "shape": list(shape),
        "device": str(predictor.device),
        "rows": [dataclasses.asdict(r) for r in rows],
    }
    print(json.dumps(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


def run_brain_extraction(args: argparse.Namespace) -> int:
    """Measure each phantom, print the table, then the JSON."""
    from mstkd.bench.brain_extraction import bench_brain_extraction, format_table, largest_gap
    from mstkd.conventions import parse_subset
    from mstkd.inference.predictor import Predictor
    from mstkd.phantom import parse_size

    shape, subset = parse_size(args.shape), parse_subset(args.sequences)
    predictor = Predictor(args.model, args.device)
    rows = bench_brain_extraction(predictor, args.seed, max(1, args.cases), shape, subset)
    print(
        f"mstkd bench brain-extraction: model {predictor.name} (sha256 {predictor.sha256[:12]}...), "
        f"phantoms with a head, seed {args.seed}, shape {'x'.join(str(s) for s in shape)}, native grids, "
        f"from {subset.name}, device {predictor.device}"
    )
    print(format_table(rows))
    print(f"largest |Dice extracted - Dice stripped|: {largest_gap(rows):.3f}")
    report = {
        "model": predictor.name,
        "sha256": predictor.sha256,
        "seed": args.seed,
        "shape": list(shape),
        "sequences": list(subset.sequences),
        "device": str(predictor.device),
        "rows": [dataclasses.asdict(r) for r in rows],
    }
    print(json.dumps(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0
