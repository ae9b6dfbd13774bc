"""`mstkd train`: train MST-KDNet, MAG-MS or the modality-dropout baseline from a YAML config."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mstkd.cli.options import add_overrides
from mstkd.errors import MSTKDError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `train` subcommand."""
    parser = subparsers.add_parser(
        "train",
        help="train MST-KDNet, MAG-MS or the baseline from a YAML config",
        description=(
            "Train from a YAML config (Training/configs/). Works the same under "
            "`torchrun --nproc_per_node N [--nnodes M ...] -m mstkd train ...` (PyTorch DDP). "
            "SIGTERM/SIGINT write a checkpoint and stop; --resume continues exactly where it stopped."
        ),
    )
    parser.add_argument(
        "--config", type=Path, help="experiment YAML; with --resume the run's own config is used"
    )
    add_overrides(parser, "data.root=phantoms --set train.steps=500")
    parser.add_argument("--out", type=Path, help="run folder (default runs/<config>-<date-time>)")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh in an --out that holds a run (its weights and log are replaced) or other files",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Load the config, train, and say where the results are."""
    from mstkd.experiment import load_experiment
    from mstkd.files import check_writable
    from mstkd.training.run import RunFiles, check_new_run, check_resumable
    from mstkd.training.trainer import Trainer

    if args.resume:
        if args.out is None:
            raise MSTKDError("--resume needs --out, the folder of the run to continue.")
        if args.overwrite:
            raise MSTKDError(
                "--resume continues the run in --out and --overwrite replaces it; give one of them."
            )
        check_resumable(RunFiles(args.out))
        config = args.config or RunFiles(args.out).config
    else:
        if args.config is None:
            raise MSTKDError("Give --config, e.g. --config Training/configs/small.yaml.")
        config = args.config
    out = args.out or Path("runs") / f"{Path(config).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    if not args.resume:
        check_new_run(RunFiles(out), args.overwrite)
    check_writable(out)
    experiment = load_experiment(config, args.overrides)
    trainer = Trainer(experiment, out, resume=args.resume, overwrite=args.overwrite)
    last = trainer.run()
    if not trainer.context.is_main:
        return trainer.exit_status
    files = RunFiles(out)
    total = trainer.schedule.total_steps
    if last < total:
        print(f"Stopped at step {last} of {total}; continue with:")
        print(f"  mstkd train --resume --out {out}")
    else:
        print(f"Trained to step {last}. Run folder: {out}")
    print(f"  inference model: {files.student}  (best on validation: {files.best_student})")
    return trainer.exit_status
