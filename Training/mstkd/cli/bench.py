"""`mstkd bench`: speed and memory figures of training and inference."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from mstkd.cli.options import add_device, add_model
from mstkd.files import write_text


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `bench model`, `bench inference` and `bench batchnorm`."""
    parser = subparsers.add_parser("bench", help="measure speed and memory of training and inference")
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
    engine = tasks.add_parser(
        "engine",
        help="per-exam latency of a new `mstkd segment` process against the warm engine (`mstkd serve`)",
        description=(
            "Segment one generated phantom exam (uncompressed NRRD inputs, as the Slicer module writes them) "
            "RUNS times each way, alternating: a new `mstkd segment` process per run, and requests to one "
            "warm engine (`mstkd serve`, whose first run includes its start). Prints the seconds from "
            "request to written result: the first run, the median of the others, and their ratio."
        ),
    )
    add_model(engine)
    add_device(engine)
    engine.add_argument(
        "--sequences", default="flair,t2", metavar="LIST", help="sequences given (default flair,t2)"
    )
    engine.add_argument("--runs", type=int, default=4, help="runs each way, the first included (default 4)")
    engine.add_argument(
        "--shape", default="240,240,155", metavar="X,Y,Z", help="phantom size (default BraTS)"
    )
    engine.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    engine.set_defaults(run=run_engine)

    batchnorm = tasks.add_parser(
        "batchnorm",
        help="held-out Dice of a trained model with running, recalibrated or per-sample BatchNorm statistics",
        description=(
            "Score a trained model's held-out cases (the validation and test parts of its own seeded "
            "split, recomputed over the cases in --data) three times: with BatchNorm's running statistics "
            "(.eval()), with statistics recalibrated by one pass over --patches training patches, and with "
            "each sample's own statistics (as in training at batch 1). Dice per region under the model's "
            "label rule."
        ),
    )
    batchnorm.add_argument("--model", required=True, metavar="NAME|PATH", help="registry name or model file")
    batchnorm.add_argument("--data", type=Path, required=True, help="the cases the model was trained on")
    batchnorm.add_argument(
        "--subsets", help="';'-separated subsets to score (default: those the model was validated on)"
    )
    batchnorm.add_argument(
        "--patches", type=int, default=200, help="training patches for recalibration (default 200)"
    )
    add_device(batchnorm)
    batchnorm.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    batchnorm.set_defaults(run=run_batchnorm)


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
        write_text(args.json, json.dumps(report, indent=2))
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
        write_text(args.json, json.dumps(report, indent=2))
    return 0


def run_engine(args: argparse.Namespace) -> int:
    """Generate the exam, time both paths, print the table, then the JSON."""
    import tempfile

    from mstkd.bench.engine import bench_engine, format_engine_table, write_nrrd_inputs
    from mstkd.bench.inference import write_bench_case
    from mstkd.conventions import parse_subset
    from mstkd.errors import MSTKDError
    from mstkd.phantom import parse_size

    if args.runs < 2:
        raise MSTKDError("--runs needs 2 or more: the first run of the warm engine includes its start.")
    shape = parse_size(args.shape)
    sequences = parse_subset(args.sequences).sequences
    with tempfile.TemporaryDirectory(prefix="mstkd-bench-") as scratch:
        folder = Path(scratch)
        inputs = write_nrrd_inputs(write_bench_case(folder / "exam", shape), sequences, folder / "inputs")
        (folder / "out").mkdir()
        times = bench_engine(inputs, folder / "out", args.model, args.device, args.runs)
    print(
        f"mstkd bench engine: model {args.model}, device {args.device}, exam {'x'.join(map(str, shape))} "
        f"from {'+'.join(sequences)}, {args.runs} runs each way (alternating)"
    )
    print(format_engine_table(times))
    report = {
        "model": args.model,
        "device": args.device,
        "shape": list(shape),
        "sequences": list(sequences),
        "child_s": times.child_s,
        "warm_s": times.warm_s,
        "child_cpu_s": times.child_cpu_s,
        "warm_cpu_s": times.warm_cpu_s,
        "ratio": times.ratio,
        "cpu_ratio": times.cpu_ratio,
    }
    print(json.dumps(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


def run_batchnorm(args: argparse.Namespace) -> int:
    """Measure, print the table, then the JSON."""
    from mstkd.bench.batchnorm import bench_batchnorm
    from mstkd.conventions import parse_subsets
    from mstkd.inference.predictor import Predictor

    predictor = Predictor(args.model, args.device)
    model = predictor.model
    subsets = parse_subsets(args.subsets or model.experiment.train.val_subsets)
    results = bench_batchnorm(model, args.data, subsets, max(1, args.patches), predictor.device)
    print(
        f"mstkd bench batchnorm: model {predictor.name}, sha256 {predictor.sha256[:12]}..., held-out cases "
        f"of {args.data}, subsets {', '.join(s.name for s in subsets)}, {args.patches} recalibration "
        f"patches, device {predictor.device}"
    )
    regions = list(next(iter(results.values())))
    print(f"{'statistics':<14}" + "".join(f"{region:>8}" for region in regions))
    for name, scores in results.items():
        print(f"{name:<14}" + "".join(f"{scores[region]:>8.4f}" for region in regions))
    report = {"model": predictor.name, "sha256": predictor.sha256, "patches": args.patches, "dice": results}
    print(json.dumps(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0
