"""`mstkd bench segment`: what a user waits for after typing `mstkd segment`, start-up included.

Each run is a new Python process started as a shell starts it, timed from start to exit. The
floor beside it, `python -c "import torch"`, is what no command of ours can go under.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Sequence

import numpy as np

from mstkd.errors import MSTKDError
from mstkd.imageio import image_to_array, read_image

STAGES = ("read", "preprocess", "inference", "postprocess", "write")
FLOOR_COMMAND = ("-c", "import torch")


@dataclass(frozen=True)
class SegmentTiming:
    """Wall times of `mstkd segment` from the shell and of the floor; the labels' fingerprint."""

    sequences: List[str]
    model: str
    repeats: int
    wall_s: List[float]
    floor_s: List[float]
    segmenting_s: List[float]  # the summary's total: reading the inputs to writing the labels
    stages_s: Dict[str, float]  # median per stage
    labels_sha256: str
    label_voxels: Dict[str, int]

    @property
    def median_wall_s(self) -> float:
        """Median wall time of the command."""
        return statistics.median(self.wall_s)

    @property
    def median_startup_s(self) -> float:
        """Median time outside segmenting: interpreter, imports, loading the model, exit."""
        return statistics.median(w - s for w, s in zip(self.wall_s, self.segmenting_s))


def bench_segment(
    files: Mapping[str, Path], model: str, device: str, out_dir: Path, repeats: int
) -> SegmentTiming:
    """Run `mstkd segment` on `files` once to warm the file cache, then `repeats` times, beside the floor."""
    out_dir.mkdir(parents=True, exist_ok=True)
    labels, summary = out_dir / "labels.nii.gz", out_dir / "summary.json"
    command = ["-m", "mstkd", "segment", *[a for s, f in files.items() for a in (f"--{s}", str(f))]]
    command += ["-o", str(labels), "--summary", str(summary), "--model", model, "--device", device]
    wall, floor, segmenting, stages = [], [], [], []
    _timed(command)
    for _ in range(repeats):
        floor.append(_timed(FLOOR_COMMAND))
        labels.unlink()
        wall.append(_timed(command))
        timings = json.loads(summary.read_text(encoding="utf-8"))["timings_s"]
        segmenting.append(timings["total"])
        stages.append(timings)
    array = image_to_array(read_image(labels))
    values, counts = np.unique(array, return_counts=True)
    return SegmentTiming(
        sequences=list(files),
        model=model,
        repeats=repeats,
        wall_s=wall,
        floor_s=floor,
        segmenting_s=segmenting,
        stages_s={stage: statistics.median(t[stage] for t in stages) for stage in STAGES},
        labels_sha256=hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest(),
        label_voxels={str(v): int(c) for v, c in zip(values, counts)},
    )


def format_report(timing: SegmentTiming, machine: str) -> str:
    """The figures as lines of text."""
    floor = statistics.median(timing.floor_s)
    stages = ", ".join(f"{stage} {timing.stages_s[stage]:.2f}" for stage in STAGES)
    return "\n".join(
        [
            f"mstkd bench segment: model {timing.model}, {'+'.join(timing.sequences)} of the demo's "
            f"240x240x155 phantom exam, {timing.repeats} runs after one warm-up; {machine}",
            f"{'':<34}{'median s':>9}{'min s':>8}{'max s':>8}",
            _line("mstkd segment, from the shell", timing.wall_s),
            _line("  of which segmenting", timing.segmenting_s),
            f"{'':<36}({stages})",
            _line("  start-up and exit", [w - s for w, s in zip(timing.wall_s, timing.segmenting_s)]),
            _line("floor: python -c 'import torch'", timing.floor_s),
            f"mstkd segment takes {timing.median_wall_s / floor:.2f}x the floor; start-up and exit "
            f"{timing.median_startup_s / floor:.2f}x",
            f"labels: sha256 of the voxels {timing.labels_sha256[:16]}..., "
            f"voxels per label {timing.label_voxels}",
        ]
    )


def _line(name: str, values: Sequence[float]) -> str:
    return f"{name:<34}{statistics.median(values):>9.2f}{min(values):>8.2f}{max(values):>8.2f}"


def _timed(arguments: Sequence[str]) -> float:
    """Wall seconds of `python ARGUMENTS` in a new process; a failure is an error."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *arguments], capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise MSTKDError(f"`python {' '.join(arguments)}` failed: {done.stderr.strip()[-500:]}")
    return elapsed
