"""`mstkd bench`: speed and memory figures of training and inference, each beside a baseline; brain
extraction on phantoms."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any, Dict, Optional

from mstkd.cli.options import add_device, add_model
from mstkd.files import write_text

SEGMENT_SEQUENCES = "flair,t2"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `bench model`, `inference`, `engine`, `batchnorm`, `segment`, `all` and `brain-extraction`."""
    parser = subparsers.add_parser(
        "bench", help="measure speed and memory of training and inference, and brain extraction"
    )
    tasks = parser.add_subparsers(dest="task", metavar="TASK", required=True)
    model = tasks.add_parser(
        "model",
        help="a full training step and an inference pass, each beside a baseline",
        description=(
            "Measure one full training step of the config's method (all networks, all losses, backward, "
            "optimisers) and one inference pass of its inference network: median time over repeats and "
            "peak memory (CUDA max allocated on a GPU, process RSS on the CPU). Each figure is also given "
            "as a ratio to a baseline measured in the same run: the step against the same step with the "
            "reference code's two backward passes, channels-last inference against the default layout, "
            "bf16 against fp32 (bf16 only where the device computes it in hardware; the output says which "
            "and why)."
        ),
    )
    model.add_argument("--config", type=Path, required=True, help="experiment YAML")
    add_device(model)
    model.add_argument("--patch", help="override the patch, e.g. 64,64,64")
    model.add_argument("--repeats", type=int, default=5, help="timed repeats after one warm-up (default 5)")
    model.add_argument("--json", type=Path, help="also write the figures to this JSON file (each row)")
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
    add_precision(inference)
    inference.add_argument(
        "--repeats", type=int, default=3, help="timed repeats after one warm-up (default 3)"
    )
    inference.add_argument(
        "--shape", default="240,240,155", metavar="X,Y,Z", help="phantom size (default BraTS)"
    )
    inference.add_argument(
        "--sequences",
        metavar="SUBSET",
        help="one subset instead of the four nested ones, e.g. flair,t2",
    )
    inference.add_argument(
        "--beside-default-layout",
        action="store_true",
        help=(
            "instead of the per-stage table, time each subset end to end with the network in the "
            "device's fastest memory layout and in PyTorch's default, alternating, and print their "
            "ratio and how many label voxels differ"
        ),
    )
    inference.add_argument(
        "--json", type=Path, help="also write the figures to this JSON file (after each row)"
    )
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

    segment = tasks.add_parser(
        "segment",
        help="wall time of `mstkd segment` from the shell, start-up included",
        description=(
            "Run `mstkd segment` on the demo's phantom exam (240 x 240 x 155, seed 2026) as a user does, "
            "in a new Python process each time, and time it from the shell: median wall time over repeats "
            "after one warm-up, the part spent segmenting (from its summary) and the rest (start-up and "
            "exit), beside the floor no command can go under (`python -c 'import torch'`). Prints a "
            "fingerprint of the label map, to check that two versions give the same labels."
        ),
    )
    add_model(segment)
    add_device(segment)
    segment.add_argument(
        "--sequences",
        default=SEGMENT_SEQUENCES,
        help=f"sequences to segment from (default {SEGMENT_SEQUENCES})",
    )
    segment.add_argument("--repeats", type=int, default=5, help="timed repeats after one warm-up (default 5)")
    segment.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    segment.set_defaults(run=run_segment)
    suite = tasks.add_parser(
        "all",
        help="the GPU checks in one unattended run (skips cleanly without a GPU)",
        description=(
            "On a GPU: the paper-size student end to end on a 240 x 240 x 155 exam (fp32 and bf16, "
            "every number of sequences, peak GPU memory), a paper-size training step (teacher, student, "
            "discriminator; fp32 and bf16 with their baselines, steps/s, peak memory), and the demo model "
            "per case. Each part runs in its own process under a time limit, and the JSON is rewritten "
            "after each part, so an interrupted run keeps what it measured. Without a GPU it says so and "
            "exits 0."
        ),
    )
    add_device(suite, default="cuda")
    suite.add_argument("--out", type=Path, default=Path("runs/gpu-checks"), help="folder of the JSON files")
    suite.set_defaults(run=run_all)

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


def add_precision(parser: argparse.ArgumentParser) -> None:
    """The `--precision` option of inference benchmarks."""
    from mstkd.devices import PRECISIONS

    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="inference precision (default auto: bf16 on a GPU with bf16 tensor cores, else fp32)",
    )


def run_model(args: argparse.Namespace) -> int:
    """Measure and print each row as it comes, then the JSON."""
    from mstkd.bench.measure import machine
    from mstkd.bench.model import BenchRow, bench_model
    from mstkd.devices import bf16_support, inference_layout, inference_precision, resolve_device
    from mstkd.experiment import load_experiment

    overrides = [f"patch=[{args.patch}]"] if args.patch else []
    experiment = load_experiment(args.config, overrides)
    device = resolve_device(args.device)
    native, why = bf16_support(device)
    report: Dict[str, Any] = {
        "config": str(args.config),
        "method": experiment.method,
        "patch": list(experiment.patch),
        "device": str(device),
        "machine": machine(device),
        "bf16": {"measured": native, "reason": why},
        "inference_precision": str(inference_precision(device)),
        "inference_layout": inference_layout(device),
        "rows": [],
    }
    print(
        f"mstkd bench model: {args.config} ({experiment.method}), patch {list(experiment.patch)}, "
        f"batch {experiment.train.batch_size}, device {device}; {report['machine']['summary']}"
    )
    print(f"bf16: {'measured beside fp32' if native else 'not measured, fp32 only'}: {why}")
    print(
        f"mstkd segment on this device runs {report['inference_precision']}, "
        f"layout {report['inference_layout']}"
    )
    print(
        f"{'task':<36}{'precision':<10}{'layout':<15}{'median s':>9}{'min s':>8}{'max s':>8}{'per s':>7}"
        f"{'peak MiB':>10}  {'vs baseline':<12}memory"
    )

    def show(row: BenchRow) -> None:
        m = row.measurement
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "baseline"
        print(
            f"{row.task:<36}{row.precision:<10}{row.layout:<15}{m.median_s:>9.3f}{m.min_s:>8.3f}{m.max_s:>8.3f}"
            f"{1 / m.median_s:>7.2f}{m.peak_memory_mib:>10.0f}  {ratio:<12}{m.memory_kind}",
            flush=True,
        )
        report["rows"].append(
            {
                **dataclasses.asdict(m),
                "task": row.task,
                "precision": row.precision,
                "layout": row.layout,
                "per_second": 1 / m.median_s,
                "baseline": row.baseline,
                "ratio": row.ratio,
            }
        )
        _write_json(args.json, report)

    bench_model(experiment, device, max(1, args.repeats), show)
    for row in report["rows"]:
        if row["baseline"]:
            print(
                f"  {row['task']}, {row['precision']}, {row['layout']}: {row['ratio']:.2f}x {row['baseline']}"
            )
    print(json.dumps(report))
    return 0


def run_inference(args: argparse.Namespace) -> int:
    """Generate the exam, measure each subset, print the table, then the JSON."""
    import tempfile

    from mstkd.bench.inference import (
        BENCH_SUBSETS,
        bench_inference,
        compare_layouts,
        export_untrained,
        format_layout_table,
        format_table,
        write_bench_case,
    )
    from mstkd.bench.measure import machine
    from mstkd.conventions import parse_subset
    from mstkd.experiment import load_experiment
    from mstkd.inference.predictor import Predictor
    from mstkd.phantom.grid import parse_size

    shape = parse_size(args.shape)
    with tempfile.TemporaryDirectory(prefix="mstkd-bench-") as scratch:
        folder = Path(scratch)
        model = args.model
        if args.config is not None:
            model = export_untrained(load_experiment(args.config), folder / "untrained.safetensors")
        predictor = Predictor(model, args.device, precision=args.precision)
        source = f"config {args.config} (untrained)" if args.config else f"model {predictor.name}"
        report: Dict[str, Any] = {
            "model": str(args.config) if args.config else predictor.name,
            "untrained": args.config is not None,
            "sha256": predictor.sha256,
            "patch": list(predictor.model.patch),
            "spacing": list(predictor.model.spacing),
            "shape": list(shape),
            "device": str(predictor.device),
            "machine": machine(predictor.device),
            "precision": args.precision,
            "rows": [],
        }
        print(
            f"mstkd bench inference: {source}, sha256 {predictor.sha256[:12]}..., patch "
            f"{list(predictor.model.patch)}, model spacing {list(predictor.model.spacing)} mm, exam "
            f"{'x'.join(str(s) for s in shape)}, device {predictor.device}, precision {args.precision}; "
            f"{report['machine']['summary']}",
            flush=True,
        )
        files = write_bench_case(folder / "exam", shape)

        def keep(row) -> None:
            report["rows"].append(dataclasses.asdict(row))
            _write_json(args.json, report)

        subsets = [parse_subset(args.sequences)] if args.sequences else BENCH_SUBSETS
        if args.beside_default_layout:
            default = Predictor(model, args.device, precision=args.precision, layout="default")
            comparisons = []
            for subset in subsets:
                comparisons.append(
                    compare_layouts(predictor, default, subset, files, folder / "out", max(1, args.repeats))
                )
                keep(comparisons[-1])
            print(format_layout_table(comparisons))
        else:
            rows = bench_inference(predictor, files, folder / "out", max(1, args.repeats), keep, subsets)
            print(format_table(rows))
    print(json.dumps(report))
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
    _write_json(args.json, report)
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
    _write_json(args.json, report)
    return 0


def run_segment(args: argparse.Namespace) -> int:
    """Time `mstkd segment` from the shell on the demo exam; print the figures, then the JSON."""
    import tempfile

    from mstkd.bench.inference import write_bench_case
    from mstkd.bench.measure import machine
    from mstkd.bench.segment import bench_segment, format_report
    from mstkd.conventions import parse_subset
    from mstkd.devices import resolve_device
    from mstkd.phantom.grid import BRATS_SIZE

    subset = parse_subset(args.sequences)
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory(prefix="mstkd-bench-") as scratch:
        files = write_bench_case(Path(scratch) / "exam", BRATS_SIZE)
        chosen = {s: files[s] for s in subset.sequences}
        result = bench_segment(chosen, args.model, str(device), Path(scratch) / "out", max(1, args.repeats))
    report = {**dataclasses.asdict(result), "device": str(device), "machine": machine(device)}
    print(format_report(result, report["machine"]["summary"]))
    print(json.dumps(report))
    _write_json(args.json, report)
    return 0


def run_all(args: argparse.Namespace) -> int:
    """The GPU checks, part by part; without a GPU, one line and status 0."""
    from mstkd.bench.suite import run_suite

    return run_suite(args.device, args.out)


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
    _write_json(args.json, report)
    return 0


def _write_json(path: Optional[Path], report: Dict[str, Any]) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(report, indent=2) + "\n")
