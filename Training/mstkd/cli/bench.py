"""`mstkd bench`: speed and memory figures of training and inference."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from mstkd.cli.unavailable import register_unavailable
from mstkd.devices import DEVICE_CHOICES


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `bench model` (and `bench inference`)."""
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
    model.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICE_CHOICES)} (default auto)")
    model.add_argument("--patch", help="override the patch, e.g. 64,64,64")
    model.add_argument("--repeats", type=int, default=5, help="timed repeats after one warm-up (default 5)")
    model.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    model.set_defaults(run=run_model)
    register_unavailable(tasks, "inference", "end-to-end latency and memory of `mstkd segment` on one case")


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
