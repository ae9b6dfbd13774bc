"""`mstkd bench engine`: what a front end waits for per exam, a new `mstkd segment` process per run
against the warm engine (`mstkd serve`), measured side by side on one phantom exam.

Both paths get the same request a front end sends (uncompressed NRRD inputs, as the Slicer module
writes them; a label map and a summary to write) and are timed from the request to the written
result, child-process runs and warm-engine runs alternating so that a busy machine slows both alike.
The processor time each run took is measured too: on a machine shared with other work it is the
steadier figure. The warm engine's first run includes its start (Python, PyTorch, the model); the
runs after it are the ones it exists for.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import psutil

from mstkd.errors import MSTKDError
from mstkd.inference.messages import END, PROGRESS, SEGMENT, Reply, decode_reply, encode_request


@dataclass(frozen=True)
class EngineTimes:
    """Seconds from request to result (wall) and processor seconds of each run, per path."""

    child_s: List[float]
    warm_s: List[float]
    child_cpu_s: List[float]
    warm_cpu_s: List[float]

    @property
    def ratio(self) -> float:
        """Warm engine over child process, median wall time of the runs after the first."""
        return statistics.median(self.warm_s[1:]) / statistics.median(self.child_s[1:])

    @property
    def cpu_ratio(self) -> float:
        """The same for processor time."""
        return statistics.median(self.warm_cpu_s[1:]) / statistics.median(self.child_cpu_s[1:])


def write_nrrd_inputs(files: Dict[str, Path], sequences: Sequence[str], folder: Path) -> Dict[str, Path]:
    """The chosen sequences as uncompressed NRRD files, as the Slicer module exports them."""
    import SimpleITK as sitk

    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for sequence in sequences:
        written[sequence] = folder / f"{sequence}.nrrd"
        sitk.WriteImage(sitk.ReadImage(str(files[sequence])), str(written[sequence]), useCompression=False)
    return written


def segment_arguments(inputs: Dict[str, Path], out: Path, model: str, device: str) -> List[str]:
    """The arguments a front end gives `mstkd segment` for one exam."""
    arguments: List[str] = []
    for sequence, path in inputs.items():
        arguments += [f"--{sequence}", str(path)]
    return arguments + [
        "-o", str(out / "segmentation.nrrd"),
        "--summary", str(out / "summary.json"),
        "--model", model,
        "--device", device,
        "--progress", "jsonl",
    ]  # fmt: skip


def bench_engine(inputs: Dict[str, Path], out: Path, model: str, device: str, runs: int) -> EngineTimes:
    """Time `runs` exams each way, alternating: a new `mstkd segment` process, then the warm engine."""
    arguments = segment_arguments(inputs, out, model, device)
    engine = WarmEngineClient()
    child: List[Tuple[float, float]] = []
    warm: List[Tuple[float, float]] = []
    try:
        for index in range(runs):
            child.append(_timed_child(arguments))
            warm.append(engine.segment(str(index), arguments))
    finally:
        engine.close()
    return EngineTimes(
        [c[0] for c in child], [w[0] for w in warm], [c[1] for c in child], [w[1] for w in warm]
    )


def format_engine_table(times: EngineTimes) -> str:
    """The figures as text: first run and the median of the others, wall and processor seconds."""
    rows = [f"{'path':<28}{'run 1 s':>9}{'runs 2.. s':>12}{'min-max':>13}{'CPU run 1':>11}{'CPU 2..':>9}"]
    paths = (
        ("child process per run", times.child_s, times.child_cpu_s),
        ("warm engine (mstkd serve)", times.warm_s, times.warm_cpu_s),
    )
    for name, wall, cpu in paths:
        later = wall[1:]
        rows.append(
            f"{name:<28}{wall[0]:>9.2f}{statistics.median(later):>12.2f}{min(later):>7.2f}-{max(later):<5.2f}"
            f"{cpu[0]:>11.2f}{statistics.median(cpu[1:]):>9.2f}"
        )
    rows.append(
        f"warm engine / child process, runs after the first: {times.ratio:.2f} (wall), "
        f"{times.cpu_ratio:.2f} (processor time)"
    )
    return "\n".join(rows)


class WarmEngineClient:
    """A blocking client of `mstkd serve`, started at once (its start counts in the first run);
    `log` receives the engine's stderr."""

    def __init__(self, log: Any = subprocess.DEVNULL) -> None:
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mstkd", "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            bufsize=1,
        )
        self.usage = psutil.Process(self.process.pid)
        self.cpu = 0.0
        self.first = True

    def ask(self, request_id: str, kind: str, payload: Any) -> Tuple[Reply, List[Dict[str, Any]]]:
        """Send one request; its END reply and the progress replies before it."""
        self.process.stdin.write(encode_request(request_id, kind, payload) + "\n")
        self.process.stdin.flush()
        progress = []
        for line in self.process.stdout:
            reply = decode_reply(line)
            if reply is None:
                raise MSTKDError(f"The warm engine wrote a line that is no reply: {line.strip()[:80]!r}")
            if reply.kind == END and reply.request_id == request_id:
                return reply, progress
            if reply.kind == PROGRESS:
                progress.append(reply.data)
        raise MSTKDError("The warm engine ended without answering.")

    def segment(self, request_id: str, arguments: List[str]) -> Tuple[float, float]:
        """Wall and processor seconds from this request (the first: from the engine's start) to its END."""
        started = self.started if self.first else time.perf_counter()
        self.first = False
        reply, _ = self.ask(request_id, SEGMENT, arguments)
        if reply.status != 0:
            raise MSTKDError(f"The warm engine failed: {reply.error}")
        wall = time.perf_counter() - started
        times = self.usage.cpu_times()
        cpu, self.cpu = times.user + times.system - self.cpu, times.user + times.system
        return wall, cpu

    def close(self) -> int:
        """Close its stdin (it stops); its exit status."""
        self.process.stdin.close()
        return self.process.wait(60)


def _timed_child(arguments: List[str]) -> Tuple[float, float]:
    import resource  # POSIX: the processor time of finished children

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "mstkd", "segment", *arguments], capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise MSTKDError(f"`mstkd segment` failed: {done.stderr.strip().splitlines()[-1:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
