"""Timing and peak memory: CUDA max allocated on a GPU, sampled process RSS on the CPU."""

from __future__ import annotations

import os
import platform
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List

import psutil
import torch

_RSS_SAMPLE_SECONDS = 0.01
BYTES_PER_MIB = 1024**2


@dataclass(frozen=True)
class Measurement:
    """Median and spread of repeated timings, and the peak memory while they ran."""

    median_s: float
    min_s: float
    max_s: float
    repeats: int
    peak_memory_mib: float
    memory_kind: str  # "cuda max allocated" or "process RSS"


class PeakRSS:
    """Samples the process's resident memory in a thread and keeps the largest value."""

    def __enter__(self) -> PeakRSS:
        self.process = psutil.Process()
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(_RSS_SAMPLE_SECONDS):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def measure(run: Callable[[], None], device: torch.device, repeats: int, warmup: int = 1) -> Measurement:
    """Run `run` warmup + repeats times; time each repeat and track peak memory."""
    for _ in range(warmup):
        run()
    synchronise(device)
    times: List[float] = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        for _ in range(repeats):
            times.append(_timed(run, device))
        peak, kind = torch.cuda.max_memory_allocated(device), "cuda max allocated"
    else:
        with PeakRSS() as rss:
            for _ in range(repeats):
                times.append(_timed(run, device))
        peak, kind = rss.peak, "process RSS"
    return Measurement(statistics.median(times), min(times), max(times), repeats, peak / BYTES_PER_MIB, kind)


def _timed(run: Callable[[], None], device: torch.device) -> float:
    start = time.perf_counter()
    run()
    synchronise(device)
    return time.perf_counter() - start


def synchronise(device: torch.device) -> None:
    """Wait for the work queued on a GPU (nothing to wait for on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def machine(device: torch.device) -> Dict[str, Any]:
    """What the figures were measured on, and the load they were measured under."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    cpus = os.cpu_count() or 1
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    where = gpu or f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    return {
        "cpus": cpus,
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": load[0],
        "gpu": gpu,
        "torch": torch.__version__,
        "cudnn_tf32": torch.backends.cudnn.allow_tf32 if device.type == "cuda" else None,
        "summary": f"{where}; load average {load[0]:.1f} on {cpus} CPUs; torch {torch.__version__}",
    }
