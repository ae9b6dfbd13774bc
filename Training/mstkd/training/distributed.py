"""One process or many (torchrun): rank, world size, device, and collective helpers."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from mstkd.devices import resolve_device
from mstkd.errors import MSTKDError


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a (possibly single-process) run."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, validates and writes checkpoints."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """True under torchrun with more than one process."""
        return self.world_size > 1


def launched_world_size() -> int:
    """How many processes torchrun started for this job (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def start(device_name: str) -> DistributedContext:
    """Join the process group when launched by torchrun (NCCL on GPU, gloo on CPU)."""
    world_size = launched_world_size()
    if world_size == 1:
        return DistributedContext(0, 1, resolve_device(device_name))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name)
    if device.type == "cuda":
        if torch.cuda.device_count() <= local_rank:
            raise MSTKDError(
                f"Process {rank} wants GPU {local_rank} but only {torch.cuda.device_count()} are visible; "
                "start no more processes per node than GPUs (--nproc_per_node)."
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world_size)
    return DistributedContext(rank, world_size, device)


def stop(context: DistributedContext) -> None:
    """Leave the process group."""
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()


def any_rank(context: DistributedContext, flag: bool) -> bool:
    """True on every rank when `flag` is true on any (e.g. one rank received SIGTERM)."""
    if not context.enabled:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=context.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def weights_in_sync(context: DistributedContext, module: torch.nn.Module) -> bool:
    """True when every rank holds bit-identical parameters of `module`.

    Buffers (BatchNorm running statistics) are left out: DDP overwrites them with rank 0's at
    every forward, so between forwards they legitimately differ.
    """
    if not context.enabled:
        return True
    digest = hashlib.sha256()
    for tensor in module.parameters():
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    digests: list = [None] * context.world_size
    dist.all_gather_object(digests, digest.hexdigest())
    return len(set(digests)) == 1


def barrier(context: DistributedContext) -> None:
    """Wait for every rank (no-op in a single process)."""
    if context.enabled:
        dist.barrier()
