"""Which device a segmentation will run on, what that device is, and how fast the model runs there.

The warm engine (`mstkd serve`) answers a front end's device request with `check_device`: the
device a run will use (an NVIDIA GPU, Apple's GPU, or the CPU and why), its name and free memory,
the PyTorch and CUDA builds, and the seconds per sliding window the model took there just now,
which also warms the device up. A GPU on which the model runs out of memory even one window at a
time is explained, and the CPU is used.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from mstkd.conventions import SEQUENCES, mirror_passes, parse_device
from mstkd.devices import (
    autocast,
    inference_memory_format,
    inference_precision,
    mps_available,
    resolve_device,
)
from mstkd.inference.predictor import WINDOWS_PER_BATCH, fallback_reason, release_gpu_memory
from mstkd.prediction.estimate import ModelSpeed
from mstkd.prediction.window import mirrored, score_function

MIB = 1 << 20
# (model, device, progress=None) -> Predictor, like the Predictor class itself.
PredictorLoader = Callable[..., Any]


def check_device(load_predictor: PredictorLoader, model: str, requested: str = "auto") -> Dict[str, Any]:
    """The device a run of `model` asked for with `requested` will use, described, with the model's speed.

    Raises MSTKDError when the request cannot be met at all (e.g. 'cuda' without a GPU).
    """
    requested = parse_device(requested)
    device = resolve_device(requested)
    reason = _cpu_reason() if device.type == "cpu" and requested == "auto" else ""
    predictor = load_predictor(model, str(device))
    attempts = [WINDOWS_PER_BATCH, 1] if device.type == "cuda" else [WINDOWS_PER_BATCH]
    measured: Optional[Tuple[ModelSpeed, Optional[float]]] = None
    why: Optional[str] = None
    for windows in attempts:
        try:
            measured = measure_speed(predictor, device, windows)
            break
        except (RuntimeError, NotImplementedError) as error:
            why = fallback_reason(error, device)
            if why is None:
                raise
        release_gpu_memory()
    facts = describe_device(device)
    if measured is None:  # the GPU cannot run this model: say why, and measure the CPU instead
        reason = _too_small(facts, why)
        device = torch.device("cpu")
        predictor = load_predictor(model, "cpu")
        measured = measure_speed(predictor, device, WINDOWS_PER_BATCH)
        facts = describe_device(device)
    speed, peak_mib = measured
    return {
        "requested": requested,
        **facts,
        "reason": reason,
        "fell_back": device.type == "cpu" and requested != "cpu" and bool(why),
        "gpus": list_gpus(),
        "torch": torch.__version__,
        "cuda_build": torch.version.cuda,
        "model": predictor.name,
        "sha256": predictor.sha256,
        "speed": asdict(speed),
        "peak_mib": peak_mib,
    }


def measure_speed(
    predictor: Any, device: torch.device, windows_per_batch: int
) -> Tuple[ModelSpeed, Optional[float]]:
    """Seconds per window of one batch of empty windows on `device` (and the CUDA peak MiB), the
    model's test-time mirroring included.

    One window runs first, untimed (the first call sets kernels up and is several times slower); the CPU
    then times a single window (its speed per window hardly depends on the batch), so that the check
    stays short for large models.
    """
    model = predictor.model
    network = model.network.to(device, memory_format=inference_memory_format(device))
    bf16 = inference_precision(device, predictor.precision).bf16
    score = mirrored(score_function(network, (True,) * len(SEQUENCES)), model.output.mirror_axes)
    timed = 1 if device.type == "cpu" else windows_per_batch

    def windows(count: int) -> torch.Tensor:
        return torch.zeros((count, len(SEQUENCES), *model.patch), device=device)

    with torch.inference_mode(), autocast(device, bf16):
        score(windows(1))
        _synchronise(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        started = time.perf_counter()
        score(windows(timed))
        _synchronise(device)
        elapsed = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated(device) / MIB if device.type == "cuda" else None
    speed = ModelSpeed(
        device=str(device),
        seconds_per_window=elapsed / timed,
        windows_per_batch=windows_per_batch,
        patch=tuple(model.patch),  # type: ignore[arg-type]
        spacing=model.spacing,
        overlap=predictor.overlap,
        passes=mirror_passes(model.output.mirror_axes),
    )
    return speed, peak


def describe_device(device: torch.device) -> Dict[str, Any]:
    """The device's kind, name and (for a CUDA GPU) free and total memory in MiB."""
    facts: Dict[str, Any] = {"device": str(device), "kind": device.type}
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        free, total = torch.cuda.mem_get_info(index)
        facts.update(name=torch.cuda.get_device_name(index), free_mib=free / MIB, total_mib=total / MIB)
    elif device.type == "mps":
        facts.update(name="Apple GPU (Metal)")
    else:
        facts.update(name=_cpu_name(), threads=torch.get_num_threads())
    return facts


def list_gpus() -> List[Dict[str, Any]]:
    """Every CUDA GPU PyTorch sees: index, name, free and total MiB."""
    gpus = []
    for index in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
        free, total = torch.cuda.mem_get_info(index)
        name = torch.cuda.get_device_name(index)
        gpus.append({"index": index, "name": name, "free_mib": free / MIB, "total_mib": total / MIB})
    return gpus


def _cpu_reason() -> str:
    """Why 'auto' found no GPU, in words a user can act on."""
    if torch.version.cuda is not None:
        return (
            f"PyTorch {torch.__version__} is built for CUDA {torch.version.cuda} but finds no usable NVIDIA "
            "GPU (none is installed, or its driver is missing or too old)"
        )
    if platform.system() == "Darwin" and platform.machine() == "arm64" and not mps_available():
        return "this PyTorch cannot use Apple's GPU (MPS needs macOS 12.3 or later and a build with MPS)"
    return (
        f"this PyTorch ({torch.__version__}) is built without GPU support; to use an NVIDIA GPU, install a "
        "CUDA build with the PyTorch Utils module"
    )


def _too_small(facts: Dict[str, Any], why: Optional[str]) -> str:
    """Why the GPU cannot run the model (a CUDA GPU was tried one window at a time)."""
    if "free_mib" in facts:
        problem = (
            f"has {facts['free_mib']:.0f} MiB free of {facts['total_mib']:.0f} MiB and the model {why} there "
            "even one window at a time"
        )
    else:
        problem = f"{why} (the model)"
    return f"the GPU {facts['name']} {problem}: the CPU is used instead (slower)"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
