"""The panel's state, Qt-free: what it shows and enables, what the status line says, what a new case resets.

The widget keeps the user's choices in its parameter node and hands them over as PanelSettings;
PanelState turns them, the device check and the run in progress into a PanelView, which
render.PanelRenderer puts on the widgets. Events (a case loaded, a model chosen, a run's progress
and end) go to PanelState first; those that change a choice return the new PanelSettings for the
widget to store.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from mstkd.conventions import (
    AXIS_LETTERS,
    BRAIN_EXTRACTION_CHOICES,
    DEFAULT_BRAIN_EXTRACTION,
    DEFAULT_DEVICE,
    DEVICE_CHOICES,
    DISPLAY_NAMES,
    NO_MIRRORING,
    SEQUENCES,
    SequenceMap,
    mirror_passes,
    parse_device,
    parse_mirror_axes,
    sequence_map,
)
from mstkd.errors import MSTKDError
from mstkd.prediction.estimate import PREPARATION_S_PER_MVOX, ModelSpeed, TimeEstimate, estimate_time
from mstkd.preprocess.brain_extraction import check_choice
from mstkd.preprocess.reference import choose_reference
from MSTKDSegmentLib.logic import SegmentationRequest
from MSTKDSegmentLib.models import ModelChoice
from MSTKDSegmentLib.notes import Note, format_notes
from MSTKDSegmentLib.process import Progress, ProgressClock, format_duration
from MSTKDSegmentLib.sequences import duplicate_inputs
from MSTKDSegmentLib.volumes import ExamSize, exam_size

# The model combo box's "Model file..." item, as the parameter node stores it.
MODEL_FILE = "__file__"
# How the panel names the engine's device choices.
DEVICE_LABELS = {"auto": "Automatic", "cpu": "CPU", "cuda": "NVIDIA GPU (CUDA)", "mps": "Apple GPU (MPS)"}
# How the panel names the engine's brain-extraction choices.
BRAIN_EXTRACTION_LABELS = {
    "auto": "Automatic",
    "deepbet": "deepbet (T1 or T1Gd)",
    "hd-bet": "HD-BET (any sequence)",
    "none": "None (already skull-stripped)",
}
# How the panel names the test-time mirroring choices ('' keeps the model file's own).
MIRRORING_LABELS = {
    "": "As the model file says",
    NO_MIRRORING: "Off: one pass (fastest)",
    AXIS_LETTERS: "Along x, y and z: 8 passes",
}
INFO, WARNING, ERROR = "info", "warning", "error"
MIB_PER_GIB = 1024.0


@dataclass
class PanelSettings:
    """The user's choices, as the parameter node keeps them: volumes by sequence, reference ('' for
    automatic), model (a registry name or MODEL_FILE), model file, device, brain extraction, test-time
    mirroring ('' for the model file's own), output segmentation and what it shows (nested regions,
    3D surfaces, the brain mask)."""

    inputs: Dict[str, Any] = field(default_factory=dict)
    reference: str = ""
    model: str = ""
    model_file: str = ""
    device: str = DEFAULT_DEVICE
    brain_extraction: str = DEFAULT_BRAIN_EXTRACTION
    mirroring: str = ""
    output: Any = None
    nested: bool = False
    show_3d: bool = True
    brain_mask: bool = False

    def chosen(self) -> SequenceMap[Any]:
        """The volumes chosen, by sequence, in canonical order."""
        return sequence_map(self.inputs)


@dataclass(frozen=True)
class Choice:
    """A combo box: its items as (text, data) and the current one's index."""

    items: Tuple[Tuple[str, str], ...]
    current: int


@dataclass(frozen=True)
class PanelView:
    """Everything the panel shows."""

    reference: Choice
    model: Choice
    model_description: str
    model_file_visible: bool
    device: Choice
    brain_extraction: Choice
    mirroring: Choice
    device_text: str
    device_level: str
    inputs_warning: str
    apply_text: str
    apply_enabled: bool
    apply_tooltip: str
    progress_visible: bool
    progress: int
    status: str
    result: str
    notes: str


@dataclass
class RunState:
    """A run in progress, as the panel follows it."""

    started: float
    engine_ready: bool
    expected: Optional[TimeEstimate]
    voxels: int
    clock: ProgressClock
    progress: Optional[Progress] = None


class PanelState:
    """The panel's logic: `models` are the registry's choices; `clock` gives seconds (monotonic);
    `measure` gives an exam's ExamSize (inputs, reference) for the time estimate."""

    def __init__(
        self,
        models: Sequence[ModelChoice],
        clock: Callable[[], float] = time.monotonic,
        measure: Callable[[Mapping[str, Any], str], ExamSize] = exam_size,
    ) -> None:
        self.models = list(models)
        self.clock = clock
        self.measure = measure
        self.run: Optional[RunState] = None
        self.missing_packages: List[str] = []
        self.device_report: Optional[Dict[str, Any]] = None
        self.device_error = ""
        self.device_pending = False
        self._device_asked: Optional[Tuple[str, str]] = None
        self.preparation_s_per_mvox = PREPARATION_S_PER_MVOX
        self.status = ""
        self.result = ""
        self.notes: List[Note] = []
        self._sizes: Dict[Tuple, ExamSize] = {}

    # Choices

    def new_case(self, settings: PanelSettings, nodes: Mapping[str, Any]) -> PanelSettings:
        """A case was loaded: its volumes become the inputs, the reference is automatic again, and the
        result goes to a new segmentation (never over the previous case's)."""
        self.result, self.notes = "", []
        self.status = f"Loaded {', '.join(DISPLAY_NAMES[s] for s in sequence_map(nodes))}."
        inputs = {s: nodes.get(s) for s in SEQUENCES}
        return dataclasses.replace(settings, inputs=inputs, reference="", output=None)

    def choose_model(self, settings: PanelSettings, data: str) -> PanelSettings:
        """A model item was chosen (a registry name, or MODEL_FILE for a file of one's own)."""
        self.forget_device_check()
        return dataclasses.replace(settings, model=data)

    def choose_device(self, settings: PanelSettings, data: str) -> PanelSettings:
        """A device item was chosen."""
        self.forget_device_check()
        return dataclasses.replace(settings, device=parse_device(data))

    def choose_brain_extraction(self, settings: PanelSettings, data: str) -> PanelSettings:
        """A brain-extraction item was chosen."""
        return dataclasses.replace(settings, brain_extraction=check_choice(data))

    def choose_mirroring(self, settings: PanelSettings, data: str) -> PanelSettings:
        """A test-time mirroring item was chosen ('' for the model file's own, 'none', or axes as 'xyz')."""
        if data:
            parse_mirror_axes(data)
        return dataclasses.replace(settings, mirroring=data)

    def model_item(self, settings: PanelSettings) -> str:
        """The model item in effect: the one stored, else a model file, else the first registry model."""
        if settings.model:
            return settings.model
        if settings.model_file:
            return MODEL_FILE
        return self.models[0].name if self.models else MODEL_FILE

    def selected_model(self, settings: PanelSettings) -> str:
        """What to pass to the engine: a registry name or the model file's path ('' when there is none)."""
        item = self.model_item(settings)
        return settings.model_file.strip() if item == MODEL_FILE else item

    def run_device(self, settings: PanelSettings) -> str:
        """The device to run on: the one the device check chose for this choice (e.g. the CPU when the GPU
        is too small), else the choice itself."""
        report = self.device_report
        if report and report.get("requested") == settings.device and report.get("device"):
            return str(report["device"])
        return settings.device

    def request(self, settings: PanelSettings) -> SegmentationRequest:
        """The segmentation the panel's choices ask for (on the device the device check chose)."""
        return SegmentationRequest(
            inputs=settings.chosen(),
            model=self.selected_model(settings),
            device=self.run_device(settings),
            reference=settings.reference or None,
            segmentation=settings.output,
            nested=settings.nested,
            show_3d=settings.show_3d,
            brain_extraction=settings.brain_extraction,
            brain_mask=settings.brain_mask,
            mirror_axes=settings.mirroring or None,
        )

    # The device check

    def forget_device_check(self) -> None:
        """The model or device changed: the last check no longer applies."""
        self.device_report, self.device_error, self.device_pending = None, "", False

    def device_check_sent(self, settings: PanelSettings) -> Tuple[str, str]:
        """A device check is asked of the engine; returns what it is asked about: (model, device)."""
        self.forget_device_check()
        self.device_pending = True
        self._device_asked = (self.selected_model(settings), settings.device)
        return self._device_asked

    def device_checked(
        self, settings: PanelSettings, report: Optional[Dict[str, Any]], error: str = ""
    ) -> bool:
        """The engine answered a device check (its report, or why it could not). False when the model or
        device changed meanwhile: the answer is dropped, and another check is due."""
        asked, self._device_asked = self._device_asked, None
        self.device_pending = False
        if asked != (self.selected_model(settings), settings.device):
            return False
        self.device_report, self.device_error = report, error
        return True

    def expected_time(self, settings: PanelSettings) -> Optional[TimeEstimate]:
        """How long a run on the chosen volumes should take, from the device check's measured speed (with
        the model file's mirroring), for the mirroring chosen."""
        chosen = settings.chosen()
        if not chosen or not self.device_report or "speed" not in self.device_report:
            return None
        speed = self.device_report["speed"]
        model_speed = ModelSpeed(
            str(speed["device"]),
            float(speed["seconds_per_window"]),
            int(speed["windows_per_batch"]),
            tuple(int(p) for p in speed["patch"]),  # type: ignore[arg-type]
            tuple(float(s) for s in speed["spacing"]),  # type: ignore[arg-type]
            float(speed["overlap"]),
            int(speed.get("passes", 1)),
        )
        try:
            if settings.mirroring:
                model_speed = model_speed.with_passes(mirror_passes(parse_mirror_axes(settings.mirroring)))
            size = self._size(chosen, self.reference_of(settings))
        except MSTKDError:  # e.g. a volume under a non-linear transform: Segment or the run says what to do
            return None
        return estimate_time(
            model_speed, size.extent_mm, size.voxels, size.registrations, self.preparation_s_per_mvox
        )

    def reference_of(self, settings: PanelSettings) -> str:
        """The reference sequence the run will use."""
        chosen = settings.chosen()
        return choose_reference(chosen, settings.reference if settings.reference in chosen else None)

    # A run

    def run_started(self, settings: PanelSettings, engine_ready: bool) -> None:
        """A run has started (`engine_ready`: the warm engine was up already)."""
        voxels = sum(math.prod(node.GetImageData().GetDimensions()) for node in settings.chosen().values())
        self.run = RunState(
            self.clock(), engine_ready, self.expected_time(settings), voxels, ProgressClock(self.clock)
        )
        self.status, self.result, self.notes = "", "", []

    def run_event(self, event: Any) -> Optional[str]:
        """Take an event of the run; returns a line for the log, if it deserves one."""
        if self.run is None:
            return None
        if isinstance(event, Progress):
            previous = self.run.progress
            self.run.progress = event
            self.run.clock.update(event)
            if event.message and (previous is None or event.message != previous.message):
                return f"{event.stage}: {event.message}"
            return None
        return str(event)

    def run_finished(
        self,
        name: str,
        volumes_ml: Mapping[str, float],
        notes: Sequence[Note],
        summary: Mapping[str, Any],
    ) -> None:
        """The result is in the scene: show its volumes and notes; learn how fast this machine prepares."""
        if self.run is not None and self.run.voxels:
            self._learn_preparation_speed(summary, self.run.voxels)
        self.run = None
        model = summary.get("model") if isinstance(summary.get("model"), dict) else {}
        self.status = (
            f"Done: '{name}' ({model.get('name', '')}, {', '.join(summary.get('sequences') or [])})."
        )
        self.result = "   ".join(f"{key} {volume:.1f} mL" for key, volume in volumes_ml.items())
        self.notes = list(notes)

    def run_failed(self, message: str) -> None:
        """The run failed; the scene is as it was."""
        self.run = None
        self.status = f"Segmentation failed: {message}"

    def run_cancelled(self) -> None:
        """The run was cancelled; the scene is as it was."""
        self.run = None
        self.status = "Cancelled; the scene was left as it was."

    # The view

    def view(self, settings: PanelSettings) -> PanelView:
        """What the panel shows for these settings, now."""
        chosen = settings.chosen()
        item = self.model_item(settings)
        apply_text, apply_enabled, apply_tooltip = self._apply(settings, chosen)
        device_text, device_level = self._device_text(settings)
        running = self.run is not None
        return PanelView(
            reference=self._reference_choice(settings, chosen),
            model=self._model_choice(item),
            model_description=self._model_description(item),
            model_file_visible=item == MODEL_FILE,
            device=self._device_choice(settings),
            brain_extraction=_choice(
                [(BRAIN_EXTRACTION_LABELS[c], c) for c in BRAIN_EXTRACTION_CHOICES], settings.brain_extraction
            ),
            mirroring=_choice(mirroring_items(settings.mirroring), settings.mirroring),
            device_text=device_text,
            device_level=device_level,
            inputs_warning="\n".join(duplicate_inputs(chosen)),
            apply_text=apply_text,
            apply_enabled=apply_enabled,
            apply_tooltip=apply_tooltip,
            progress_visible=running,
            progress=int(round(100 * self.run.clock.fraction)) if running else 0,
            status=self._status_line() if running else self.status,
            result=self.result,
            notes=format_notes(self.notes),
        )

    def _reference_choice(self, settings: PanelSettings, chosen: Mapping[str, Any]) -> Choice:
        automatic = choose_reference(chosen) if chosen else None
        items = [(f"Automatic ({DISPLAY_NAMES[automatic]})" if automatic else "Automatic", "")]
        items += [(f"{DISPLAY_NAMES[s]}: {node.GetName()}", s) for s, node in chosen.items()]
        return _choice(items, settings.reference)

    def _model_choice(self, item: str) -> Choice:
        items = [(model.name, model.name) for model in self.models] + [("Model file...", MODEL_FILE)]
        return _choice(items, item)

    def _model_description(self, item: str) -> str:
        if item == MODEL_FILE:
            return "A model file exported by mstkd train; its SHA-256 is recorded with the result."
        model = next((m for m in self.models if m.name == item), None)
        return (model.description or model.intended_use) if model else ""

    def _device_choice(self, settings: PanelSettings) -> Choice:
        items = [(DEVICE_LABELS[d], d) for d in DEVICE_CHOICES]
        gpus = (self.device_report or {}).get("gpus") or []
        if len(gpus) > 1:
            items += [(f"GPU {gpu['index']}: {gpu['name']}", f"cuda:{gpu['index']}") for gpu in gpus]
        if settings.device not in [data for _, data in items]:
            items.append((f"GPU {settings.device.split(':')[-1]} ({settings.device})", settings.device))
        return _choice(items, settings.device)

    def _apply(self, settings: PanelSettings, chosen: Mapping[str, Any]) -> Tuple[str, bool, str]:
        if self.run is not None:
            return "Cancel", True, "Stop the segmentation; the scene stays as it was."
        model = self.selected_model(settings)
        if not chosen:
            return "Segment", False, "Choose at least one sequence (FLAIR, T1, T1Gd or T2), or load a case."
        if not model:
            return "Segment", False, "Choose a model, or a model file."
        if settings.mirroring:
            try:
                parse_mirror_axes(settings.mirroring)
            except MSTKDError as error:  # only a parameter node edited by hand holds such a value
                return "Segment", False, f"{error} Choose a mirroring item."
        names = " + ".join(DISPLAY_NAMES[s] for s in chosen)
        return "Segment", True, f"Segment the tumour from {names} with the model '{os.path.basename(model)}'."

    def _device_text(self, settings: PanelSettings) -> Tuple[str, str]:
        if self.missing_packages:
            return (
                f"Not installed yet: {', '.join(self.missing_packages)}. They are installed (after asking) "
                "when you click Segment; the device is checked then.",
                INFO,
            )
        if self.device_error:
            return self.device_error, ERROR
        if self.device_report is None:
            return ("Checking the device..." if self.device_pending else ""), INFO
        report = self.device_report
        line, level = _describe_device(report)
        expected = self.expected_time(settings)
        if expected is not None:
            per_window = expected.inference_s / expected.windows
            line += (
                f"\nExpected time for this exam: {format_duration(expected.seconds)} "
                f"({expected.windows} windows at {per_window:.2f} s, measured)"
            )
        return line, level

    def _status_line(self) -> str:
        """One line while running: what the engine does now and one estimate of the time left."""
        run = self.run
        elapsed = self.clock() - run.started
        if run.progress is None:
            if run.engine_ready:
                return "Sending the exam to the engine..."
            return (
                f"Starting the engine (Python, PyTorch; only the first run waits for this)... {elapsed:.0f} s"
            )
        remaining = _blend(run, elapsed)
        left = f" ({format_duration(remaining)} left)" if remaining is not None else ""
        return f"{run.progress.stage}: {run.progress.message}{left}"

    def _size(self, chosen: Mapping[str, Any], reference: str) -> ExamSize:
        key = (
            reference,
            *((s, n.GetID(), n.GetMTime(), n.GetImageData().GetMTime()) for s, n in chosen.items()),
        )
        if key not in self._sizes:
            self._sizes = {key: self.measure(chosen, reference)}
        return self._sizes[key]

    def _learn_preparation_speed(self, summary: Mapping[str, Any], voxels: int) -> None:
        """What this machine took to read, prepare and write an exam, per million input voxels."""
        timings = summary.get("timings_s") or {}
        if not isinstance(timings, dict) or "total" not in timings:
            return
        preparation = float(timings["total"]) - float(timings.get("inference", 0.0))
        self.preparation_s_per_mvox = max(preparation, 0.0) / (voxels / 1e6)


def _blend(run: RunState, elapsed: float) -> Optional[float]:
    """Seconds left: the expected time early on, the pace of the progress so far once it says more
    (half-way it alone counts); None while neither knows."""
    measured = run.clock.remaining_s()
    if run.expected is None:
        return measured
    expected = max(run.expected.seconds - elapsed, 0.0)
    if measured is None:
        return expected
    weight = min(run.clock.fraction / 0.5, 1.0)
    return (1.0 - weight) * expected + weight * measured


def mirroring_items(current: str) -> List[Tuple[str, str]]:
    """The mirroring combo box's items: the usual ones, and the current axes where they are others (a
    parameter node edited by hand, e.g. 'xy'), so the panel shows what the run will use."""
    items = [(label, data) for data, label in MIRRORING_LABELS.items()]
    if current and current not in MIRRORING_LABELS:
        try:
            passes = mirror_passes(parse_mirror_axes(current))
        except MSTKDError:
            return items
        items.append((f"Along {', '.join(current.strip().lower())}: {passes} passes", current))
    return items


def _choice(items: Sequence[Tuple[str, str]], current: str) -> Choice:
    datas = [data for _, data in items]
    return Choice(tuple(items), datas.index(current) if current in datas else 0)


def _describe_device(report: Mapping[str, Any]) -> Tuple[str, str]:
    """'Runs on: ...' for a device report, and whether it deserves a warning."""
    kind = report.get("kind")
    versions = f"PyTorch {report.get('torch', '?')}"
    if kind == "cuda":
        free, total = report.get("free_mib", 0.0) / MIB_PER_GIB, report.get("total_mib", 0.0) / MIB_PER_GIB
        text = (
            f"Runs on: {report['device']}, {report.get('name', 'GPU')}, {free:.1f} of {total:.1f} GiB free "
            f"(CUDA {report.get('cuda_build')}, {versions})"
        )
        return text, INFO
    if kind == "mps":
        return f"Runs on: Apple GPU (MPS), {versions}", INFO
    text = f"Runs on: the CPU ({report.get('name', 'CPU')}, {versions})"
    reason = str(report.get("reason") or "")
    if reason:
        text += f": {reason}"
    return text, WARNING if report.get("fell_back") else INFO
