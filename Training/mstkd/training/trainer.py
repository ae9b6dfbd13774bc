"""The training loop: any method, one process or many (torchrun), resumable, logged.

Rank 0 logs, validates and writes checkpoints; every rank trains on its shard of each epoch.
"""

from __future__ import annotations

import logging
import math
import signal
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List

import torch
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from mstkd.checkpoint import load_checkpoint, save_checkpoint
from mstkd.config import to_mapping
from mstkd.conventions import SEQUENCES, SUBSETS, label_convention, parse_subsets
from mstkd.errors import MSTKDError
from mstkd.experiment import ExperimentConfig, build_networks, inference_network
from mstkd.imageio import read_spacing
from mstkd.inference.model import model_metadata
from mstkd.splits import Split
from mstkd.training import distributed
from mstkd.training.data import TrainingDataset, collate
from mstkd.training.run import RunFiles, choose_split, select, usable_cases, write_splits
from mstkd.training.sampler import EpochStream
from mstkd.training.state import load_training_state, restore_rng_state, rng_state, save_training_state
from mstkd.training.steps import StepResult, TrainingStep, trainable_module
from mstkd.training.validation import MEAN, load_validation_cases, validate

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
NO_SCORE = -1.0


class Trainer:
    """Trains one experiment into a run folder; `run()` returns the last step reached."""

    def __init__(self, experiment: ExperimentConfig, folder: Path, resume: bool = False) -> None:
        self.experiment, self.files, self.resume = experiment, RunFiles(Path(folder)), resume
        self.data, self.train = experiment.data, experiment.train
        self.labels = label_convention(self.data.labels)
        self.val_subsets = parse_subsets(self.train.val_subsets)
        self.stop_requested = False
        self.best = NO_SCORE

    def run(self) -> int:
        """Train until train.steps or a stop signal; checkpoints are written on the way."""
        self.context = distributed.start(self.train.device)
        try:
            return self._run()
        finally:
            distributed.stop(self.context)

    def _run(self) -> int:
        context = self.context
        self.log = self._logger()
        torch.manual_seed(self.train.seed)  # identical initial weights on every rank
        self.networks = build_networks(self.experiment, context.device)
        discovery, cases = usable_cases(self.data)
        split = choose_split(self.data, cases)
        if not split.train or not split.val:
            raise MSTKDError(
                f"The split leaves no training or no validation case ({len(cases)} usable cases)."
            )
        self.spacing = read_spacing(cases[0].sequences[SEQUENCES[0]])
        trainable = trainable_module(self.experiment, self.networks)
        self.step = TrainingStep(
            self.experiment, self.train, self.networks, trainable, self.labels, context.device
        )
        start = self._restore() if self.resume else self._fresh_start()
        if context.is_main:
            self._describe_run(discovery.summary(), split)
        if context.enabled:
            device_ids = [context.device.index] if context.device.type == "cuda" else None
            self.step.trainable = DistributedDataParallel(trainable, device_ids=device_ids)
        batches = self._batches(select(cases, split.train), start)
        val_cases = load_validation_cases(select(cases, split.val), self.labels) if context.is_main else []
        self.writer = self._tensorboard() if context.is_main else None
        previous = {sig: signal.signal(sig, self._request_stop) for sig in _STOP_SIGNALS}
        try:
            return self._loop(start, batches, val_cases)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self.writer is not None:
                self.writer.close()

    def _loop(self, start: int, batches: Iterator[Dict[str, Any]], val_cases: List) -> int:
        steps, context = self.train.steps, self.context
        bar = tqdm(
            total=steps,
            initial=start,
            desc="training",
            unit="step",
            file=sys.stderr,
            dynamic_ncols=True,
            disable=not context.is_main,
        )
        current = start
        while current < steps:
            result = self.step(next(batches), epoch=current / self.steps_per_epoch)
            current += 1
            bar.update(1)
            bar.set_postfix(loss=f"{result.total:.4f}")
            last = current == steps
            if context.is_main and (current % self.train.log_every == 0 or last):
                self._log_step(current, result)
            if context.is_main and (current % self.train.val_every == 0 or last):
                self._validate(current, val_cases)
            stop = distributed.any_rank(context, self.stop_requested)
            if current % self.train.checkpoint_every == 0 or last or stop:
                self._checkpoint(current)
            if stop:
                self.log.info("stopped by a signal at step %d; continue with --resume", current)
                break
        bar.close()
        return current

    # -- set-up -------------------------------------------------------------------------

    def _logger(self) -> logging.Logger:
        log = logging.getLogger(f"mstkd.train.{id(self)}")
        log.setLevel(logging.INFO)
        log.propagate = False
        if self.context.is_main:
            self.files.folder.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(self.files.log)
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
            log.addHandler(handler)
        return log

    def _fresh_start(self) -> int:
        if self.train.init_from:
            self._initialise_from(Path(self.train.init_from))
        torch.manual_seed(self.train.seed + 1000 * (self.context.rank + 1))  # each rank its own dropout
        return 0

    def _initialise_from(self, path: Path) -> None:
        """Start the inference network from a model file's weights (fine-tuning); the others stay fresh."""
        checkpoint = load_checkpoint(path)
        network = inference_network(self.experiment, self.networks)
        try:
            network.load_state_dict(checkpoint.state_dict)
        except RuntimeError as error:
            raise MSTKDError(
                f"train.init_from={path} holds another architecture than this config's "
                f"{self.experiment.method} network ({str(error).splitlines()[0]}); give a model file of "
                "the same sizes, or drop train.init_from."
            ) from None
        self.log.info("inference network initialised from %s (sha256 %s)", path, checkpoint.sha256)

    def _batches(self, cases, start: int) -> Iterator[Dict[str, Any]]:
        """An endless iterator of batches, positioned at step `start`."""
        method = self.experiment.method
        dataset = TrainingDataset(
            cases,
            self.data,
            self.experiment.patch,
            with_teacher=method == "mstkd",
            # MAG-MS learns from every sequence at once; its fusion handles missing ones at inference.
            subsets=SUBSETS[-1:] if method == "magms" else SUBSETS,
            seed=self.train.seed,
        )
        ctx = self.context
        stream = EpochStream(
            len(dataset), self.train.seed, ctx.rank, ctx.world_size, skip=start * self.train.batch_size
        )
        self.steps_per_epoch = math.ceil(stream.per_rank / self.train.batch_size)
        loader = DataLoader(
            dataset,
            batch_size=self.train.batch_size,
            sampler=stream,
            num_workers=self.data.workers,
            collate_fn=collate,
            pin_memory=ctx.device.type == "cuda",
            # A private generator: the loader must not draw from the global RNG that dropout uses,
            # or a resumed run would drift from one run straight through.
            generator=torch.Generator().manual_seed(self.train.seed),
            persistent_workers=self.data.workers > 0,
        )
        return iter(loader)

    def _tensorboard(self):
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(str(self.files.tensorboard))

    def _request_stop(self, signum, frame) -> None:
        """SIGTERM/SIGINT: finish the current step, write a checkpoint, stop."""
        self.stop_requested = True

    def _describe_run(self, discovery_summary: str, split: Split) -> None:
        self.files.config.write_text(yaml.safe_dump(to_mapping(self.experiment), sort_keys=False))
        write_splits(self.files, split)
        self.log.info("%s", discovery_summary)
        self.log.info("split: %d train, %d val, %d test", len(split.train), len(split.val), len(split.test))

    # -- per step -----------------------------------------------------------------------

    def _log_step(self, current: int, result: StepResult) -> None:
        lr = self.step.scheduler.get_last_lr()[0]
        terms = " ".join(f"{k}={v:.4g}" for k, v in result.terms.items())
        self.log.info("step %d loss %.5f lr %.3g %s", current, result.total, lr, terms)
        self.writer.add_scalar("loss/total", result.total, current)
        self.writer.add_scalar("lr", lr, current)
        for name, value in result.terms.items():
            self.writer.add_scalar(f"loss/{name}", value, current)

    def _validate(self, current: int, val_cases: List) -> None:
        network = inference_network(self.experiment, self.networks)
        scores = validate(
            network,
            val_cases,
            self.val_subsets,
            self.experiment.patch,
            self.labels,
            self.context.device,
            self.train.bf16,
        )
        self.log.info(
            "step %d validation Dice %s", current, " ".join(f"{k}={v:.4f}" for k, v in scores.items())
        )
        for region, value in scores.items():
            self.writer.add_scalar(f"val_dice/{region}", value, current)
        if scores[MEAN] > self.best:
            self.best = scores[MEAN]
            self._export(self.files.best_student, current, {"validation_dice": scores})

    # -- checkpoints --------------------------------------------------------------------

    def _checkpoint(self, current: int) -> None:
        context = self.context
        rngs = _gather_rng(context)
        if context.enabled:
            in_sync = {
                role: distributed.weights_in_sync(context, m) for role, m in self.networks.named().items()
            }
            if not all(in_sync.values()):
                raise RuntimeError(f"ranks hold different weights at step {current}: {in_sync}")
            self.log.info("step %d: weights identical on all %d ranks", current, context.world_size)
        if not context.is_main:
            return
        weights = {
            f"{role}.{name}": tensor
            for role, module in self.networks.named().items()
            for name, tensor in module.state_dict().items()
        }
        save_checkpoint(self.files.weights, weights, self._metadata(current))
        state = {"step": current, "best": self.best, "rng": rngs, **self.step.state_dict()}
        save_training_state(self.files.state, state)
        self._export(self.files.student, current, {})

    def _export(self, path: Path, current: int, extra: Dict[str, Any]) -> None:
        network = inference_network(self.experiment, self.networks)
        save_checkpoint(path, network.state_dict(), {**self._metadata(current), **extra})

    def _metadata(self, current: int) -> Dict[str, Any]:
        provenance = {"root": str(self.data.root), "splits": str(self.files.folder / "splits")}
        return model_metadata(self.experiment, self.data.labels, self.spacing, step=current, data=provenance)

    def _restore(self) -> int:
        state = load_training_state(self.files.state)
        checkpoint = load_checkpoint(self.files.weights)
        if checkpoint.metadata.get("step") != state["step"]:
            raise MSTKDError(
                f"{self.files.weights} (step {checkpoint.metadata.get('step')}) and {self.files.state} "
                f"(step {state['step']}) disagree; the run folder was changed by hand."
            )
        for role, module in self.networks.named().items():
            prefix = f"{role}."
            module.load_state_dict(
                {k[len(prefix) :]: v for k, v in checkpoint.state_dict.items() if k.startswith(prefix)}
            )
        self.step.load_state_dict(state)
        if len(state["rng"]) != self.context.world_size:
            raise MSTKDError(
                f"This run was checkpointed with {len(state['rng'])} process(es); resume it with as many "
                "(torchrun --nproc_per_node), or start a new run from its weights."
            )
        restore_rng_state(state["rng"][self.context.rank])
        self.best = state["best"]
        return int(state["step"])


def _gather_rng(context: distributed.DistributedContext) -> list:
    """Every rank's RNG state (rank 0 writes them all, so each rank resumes its own dropout stream)."""
    state = rng_state()
    if not context.enabled:
        return [state]
    gathered: list = [None] * context.world_size
    torch.distributed.all_gather_object(gathered, state)
    return gathered
