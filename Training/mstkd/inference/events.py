"""Progress of a segmentation: events with an overall fraction, and writers for them (JSON lines, text).

A front end (the Slicer module, a notebook) gets `ProgressEvent`s through a callback; the
command line writes them as one JSON object per line on stdout (`--progress jsonl`) or as text.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Callable, Dict, Optional, TextIO, Tuple, Union


@dataclass(frozen=True)
class ProgressEvent:
    """What is being done (`stage`), how far the whole job is (`fraction`, 0..1), a line for people,
    and, where the stage can tell, the seconds it still needs (`remaining_s`)."""

    stage: str
    fraction: float
    message: str
    remaining_s: Optional[float] = None

    def to_json(self) -> str:
        """One line of JSON: {"stage": ..., "fraction": ..., "message": ...[, "remaining_s": ...]}."""
        data = asdict(self)
        if self.remaining_s is None:
            del data["remaining_s"]
        return json.dumps(data)


ProgressCallback = Callable[[ProgressEvent], None]
# Where each stage of a segmentation sits in the overall fraction (about its share of a CPU run on
# a BraTS-size exam).
SPANS: Dict[str, Tuple[float, float]] = {
    "load": (0.0, 0.08),
    "preprocess": (0.08, 0.3),  # preflight, register, resample, normalise
    "infer": (0.3, 0.9),
    "postprocess": (0.9, 1.0),
}
# A stage's reporter: (its own fraction done, message[, seconds it still needs]).
StageReport = Callable[..., None]


def ignore_progress(event: ProgressEvent) -> None:
    """The default progress callback: does nothing."""


class ProgressTracker:
    """Turns stage-local progress into overall events whose fractions never go back.

    `span(stage, start, end)` gives a function (local fraction 0..1, message) -> event at
    start + local * (end - start).
    """

    def __init__(self, callback: Optional[ProgressCallback] = None) -> None:
        self.callback = callback or ignore_progress
        self.fraction = 0.0

    def __call__(
        self, stage: str, fraction: float, message: str, remaining_s: Optional[float] = None
    ) -> None:
        """Send one event; the fraction is clamped to [previous, 1]."""
        self.fraction = min(1.0, max(self.fraction, float(fraction)))
        self.callback(ProgressEvent(stage, round(self.fraction, 4), message, remaining_s))

    def span(self, stage: str, start: float, end: float) -> StageReport:
        """A reporter for one stage occupying [start, end] of the whole."""

        def report(local: float, message: str, remaining_s: Optional[float] = None) -> None:
            self(stage, start + (end - start) * min(max(float(local), 0.0), 1.0), message, remaining_s)

        return report


def scaled(callback: ProgressCallback, start: float, end: float, prefix: str = "") -> ProgressCallback:
    """A callback that maps events of a sub-job onto [start, end] of a larger job (prefixing messages)."""

    def forward(event: ProgressEvent) -> None:
        fraction = start + (end - start) * event.fraction
        callback(ProgressEvent(event.stage, round(fraction, 4), prefix + event.message, event.remaining_s))

    return forward


class JsonLinesWriter:
    """Writes each event as one JSON line and flushes, so a parent process sees it at once."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, event: ProgressEvent) -> None:
        self.stream.write(event.to_json() + "\n")
        self.stream.flush()


class TextWriter:
    """Writes events as '[ 42%] infer: message' lines, at most one per stage change or second."""

    def __init__(self, stream: TextIO, interval_s: float = 1.0) -> None:
        self.stream = stream
        self.interval_s = interval_s
        self._last: Dict[str, Union[str, float]] = {"stage": "", "time": 0.0}

    def __call__(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        changed = event.stage != self._last["stage"]
        if changed or event.fraction >= 1.0 or now - float(self._last["time"]) >= self.interval_s:
            left = "" if event.remaining_s is None else f", about {event.remaining_s:.0f} s left"
            self.stream.write(f"[{100 * event.fraction:3.0f}%] {event.stage}: {event.message}{left}\n")
            self.stream.flush()
            self._last = {"stage": event.stage, "time": now}
