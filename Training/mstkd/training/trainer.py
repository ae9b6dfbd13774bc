"""The training loop: any method, one process or many (torchrun), resumable, logged.

Rank 0 logs, validates and writes checkpoints; every rank trains on its shard of each epoch.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import torch
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from mstkd.checkpoint import checkpoint_bytes, load_checkpoint, model_metadata
from mstkd.conventions import SEQUENCES, SUBSETS, label_convention, parse_subsets
from mstkd.devices import training_precision
from mstkd.errors import MSTKDError
from mstkd.experiment import ExperimentConfig, build_networks, inference_network
from mstkd.files import make_folder, write_bytes, write_text, write_together
from mstkd.imageio import read_spacing
from mstkd.splits import Split
from mstkd.training import distributed
from mstkd.training.data import TrainingDataset, collate
from mstkd.training.run import RunFiles, choose_split, select, usable_cases, write_splits
from mstkd.training.sampler import EpochStream
from mstkd.training.schedule import training_schedule
from mstkd.training.state import (
    load_training_state,
    restore_rng_state,
    rng_state,
    training_state_bytes,
)
from mstkd.training.steps import StepResult, TrainingStep, trainable_module
from mstkd.training.validation import MEAN, load_validation_cases, validate
from mstkd.typed_config import to_mapping

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
NO_SCORE = -1.0


def _leave_stopping_to_the_main_process(worker_id: int) -> None:
    """A data-loader worker that gets SIGTERM (as every process of a job does when a scheduler stops
    it) exits quietly: the main process, signalled too, finishes its step and writes a checkpoint.
    Killed by the signal instead, the worker would make the main process fail mid-step."""
    signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(0))


class Trainer:
    """Trains one experiment into a run folder; `run()` returns the last step reached."""

    def __init__(
        self, experiment: ExperimentConfig, folder: Path, resume: bool = False, overwrite: bool = False
    ) -> None:
        self.experiment, self.files, self.resume = experiment, RunFiles(Path(folder)), resume
        self.overwrite = overwrite
        self.data, self.train = experiment.data, experiment.train
        self.labels = label_convention(self.data.labels)
        self.val_subsets = parse_subsets(self.train.val_subsets)
        self.stop_signal: Optional[int] = None
        self.best = NO_SCORE

    @property
    def stop_requested(self) -> bool:
        """True once SIGTERM or SIGINT arrived."""
        return self.stop_signal is not None

    @property
    def exit_status(self) -> int:
        """0 after a finished run; 128 + the signal's number after a stop (what a scheduler expects)."""
        return 0 if self.stop_signal is None else 128 + self.stop_signal

    def run(self) -> int:
        """Train until the schedule's last step or a stop signal; checkpoints are written on the way.

        A run that fails before its first checkpoint leaves no folder behind if it created it.
        """
        self.context = distributed.start(self.train.device)
        created = not self.files.folder.exists()
        try:
            return self._run()
        except BaseException:
            if created and self.context.is_main and not self.files.weights.exists():
                shutil.rmtree(self.files.folder, ignore_errors=True)
            raise
        finally:
            distributed.stop(self.context)

    def _run(self) -> int:
        context = self.context
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
        self.schedule = training_schedule(self.train, len(split.train), context.world_size)
        self.step = TrainingStep(
            self.experiment, self.train, self.networks, trainable, self.labels, context.device, self.schedule
        )
        initialised = None if self.resume or not self.train.init_from else self._initialise_from()
        start = self._restore() if self.resume else self._fresh_start()
        if self.overwrite and context.is_main:
            self.files.remove()  # only now: a request that fails its checks leaves the old run whole
        self.log = self._logger()
        if initialised:
            self.log.info(initialised)
        if context.is_main:
            self._describe_run(discovery.summary(), split)
        if context.enabled:
            device_ids = [context.device.index] if context.device.type == "cuda" else None
            self.step.trainable = DistributedDataParallel(trainable, device_ids=device_ids)
        batches = self._batches(select(cases, split.train), start)
        val_cases = (
            load_validation_cases(select(cases, split.val), self.labels, self.experiment.data.bias_correction)
            if context.is_main
            else []
        )
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
        steps, context = self.schedule.total_steps, self.context
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
        every = self.train.gradient_norm_every
        try:
            while current < steps:
                measure = context.is_main and every > 0 and (current + 1) % every == 0
                batch = self._next_batch(batches)
                # A signal that also ended a rank's loader workers stops every rank before the step:
                # the others cannot step without it.
                if distributed.any_rank(context, batch is None):
                    self._stop_at(current)
                    break
                result = self.step(batch, self.schedule.epoch(current), measure_gradients=measure)
                current += 1
                bar.update(1)
                bar.set_postfix(loss=f"{result.total:.4f}")
                last = current == steps
                if context.is_main and (current % self.train.log_every == 0 or last):
                    self._log_step(current, result)
                if result.gradient_norms:
                    self._log_gradients(current, result)
                if context.is_main and (current % self.train.val_every == 0 or last):
                    self._validate(current, val_cases)
                if distributed.any_rank(context, self.stop_requested):
                    self._stop_at(current)
                    break
                if current % self.train.checkpoint_every == 0 or last:
                    self._checkpoint(current)
        finally:
            bar.close()  # before any error message, which then starts on its own line
        return current

    # -- set-up -------------------------------------------------------------------------

    def _logger(self) -> logging.Logger:
        log = logging.getLogger(f"mstkd.train.{id(self)}")
        log.setLevel(logging.INFO)
        log.propagate = False
        if self.context.is_main:
            make_folder(self.files.folder)
            handler = logging.FileHandler(self.files.log)
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
            log.addHandler(handler)
        return log

    def _fresh_start(self) -> int:
        torch.manual_seed(self.train.seed + 1000 * (self.context.rank + 1))  # each rank its own dropout
        return 0

    def _initialise_from(self) -> str:
        """Start the inference network from train.init_from's weights (fine-tuning); returns a log line."""
        path = Path(self.train.init_from)
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
        return f"inference network initialised from {path} (sha256 {checkpoint.sha256})"

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
            worker_init_fn=_leave_stopping_to_the_main_process,
        )
        return iter(loader)

    def _stop_at(self, current: int) -> None:
        """A stop signal came: checkpoint the steps done, so --resume continues from there."""
        self._checkpoint(current)
        self.log.info("stopped by a signal at step %d; continue with --resume", current)

    def _next_batch(self, batches: Iterator[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
        """The next batch, or None where a stop signal has also ended the loader's workers (a scheduler
        signals every process of the job) before it came: the run then stops as the signal asked."""
        try:
            return next(batches)
        except RuntimeError:
            if self.stop_requested:
                return None
            raise

    def _tensorboard(self):
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(str(self.files.tensorboard))

    def _request_stop(self, signum, frame) -> None:
        """SIGTERM/SIGINT: finish the current step, write a checkpoint, stop."""
        self.stop_signal = int(signum)

    def _describe_run(self, discovery_summary: str, split: Split) -> None:
        write_text(self.files.config, yaml.safe_dump(to_mapping(self.experiment), sort_keys=False))
        write_splits(self.files, split)
        self.log.info("%s", discovery_summary)
        self.log.info("split: %d train, %d val, %d test", len(split.train), len(split.val), len(split.test))
        self.log.info("precision: %s", training_precision(self.context.device, self.train.bf16))

    # -- per step -----------------------------------------------------------------------

    def _log_step(self, current: int, result: StepResult) -> None:
        """Each term's raw value and weight (train.log: `name=value*weight`), and gradient norms."""
        lr = self.step.scheduler.get_last_lr()[0]
        terms = " ".join(
            f"{k}={v:.4g}" + (f"*{result.weights[k]:.4g}" if k in result.weights else "")
            for k, v in result.terms.items()
        )
        self.log.info(
            "step %d epoch %.2f loss %.5f lr %.3g %s",
            current,
            self.schedule.epoch(current),
            result.total,
            lr,
            terms,
        )
        self.writer.add_scalar("loss/total", result.total, current)
        self.writer.add_scalar("lr", lr, current)
        for name, value in result.terms.items():
            self.writer.add_scalar(f"loss/{name}", value, current)
        for name, weight in result.weights.items():
            self.writer.add_scalar(f"weight/{name}", weight, current)

    def _log_gradients(self, current: int, result: StepResult) -> None:
        """The gradient norm each weighted term sends to the student, in train.log and TensorBoard."""
        norms = " ".join(f"{k}={v:.4g}" for k, v in result.gradient_norms.items())
        self.log.info("step %d gradient norm on the student %s", current, norms)
        for name, value in result.gradient_norms.items():
            self.writer.add_scalar(f"gradient_norm/{name}", value, current)

    def _validate(self, current: int, val_cases: List) -> None:
        network = inference_network(self.experiment, self.networks)
        scores = validate(network, val_cases, self.val_subsets, self.experiment, self.context.device)
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
        state = {"step": current, "best": self.best, "rng": rngs, **self.step.state_dict()}
        # All three or none: a full disk leaves the previous checkpoint whole, and resumable.
        write_together(
            {
                self.files.weights: checkpoint_bytes(weights, self._metadata(current)),
                self.files.state: training_state_bytes(state),
                self.files.student: self._exported(current, {}),
            }
        )

    def _export(self, path: Path, current: int, extra: Dict[str, Any]) -> None:
        write_bytes(path, self._exported(current, extra))

    def _exported(self, current: int, extra: Dict[str, Any]) -> bytes:
        """The inference network as a model file's bytes."""
        network = inference_network(self.experiment, self.networks)
        return checkpoint_bytes(network.state_dict(), {**self._metadata(current), **extra})

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
