"""The Predictor: one verified model segments an exam from whatever sequences it has.

    predictor = Predictor("demo", device="auto")
    result = predictor.segment({"flair": "flair.nii.gz", "T1Gd": image}, reference="t1ce")
    sitk.WriteImage(result.labels, "labels.nii.gz")

The label map lands on the reference volume's grid voxel for voxel (mstkd.preprocess does the
preparation, brain extraction included when the exam is not skull-stripped, and its inverse);
CUDA out-of-memory errors are survived by retrying with fewer windows per batch, then on the
CPU, and the result says so.
"""

from __future__ import annotations

import copy
import gc
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union

import numpy as np
import SimpleITK as sitk
import torch

from mstkd.conventions import (
    DEFAULT_BRAIN_EXTRACTION,
    DEFAULT_DEVICE,
    DISPLAY_NAMES,
    SequenceMap,
    convert_labels,
    label_convention,
)
from mstkd.devices import (
    check_layout,
    inference_memory_format,
    inference_precision,
    mps_available,
    resolve_device,
)
from mstkd.errors import MSTKDError
from mstkd.imageio import array_to_image, image_to_array
from mstkd.inference.events import SPANS, ProgressCallback, ProgressTracker, StageReport
from mstkd.inference.model_file import load_trained_model
from mstkd.inference.registry import ModelEntry, resolve_model
from mstkd.inference.result import SegmentationResult
from mstkd.inference.tumour_extent import extent_warning
from mstkd.inference.volumes import region_volumes_ml
from mstkd.prediction.labelmap import predict_labels
from mstkd.prediction.labelrule import describe_output
from mstkd.preprocess import PreparedExam, brain_mask_on_reference, labels_to_reference, prepare_exam
from mstkd.preprocess.brain_extraction import BrainExtraction, Extractor, check_choice, extract_brain
from mstkd.preprocess.extractors import run_extractor
from mstkd.preprocess.inputs import ExamInputs, SequenceInput, read_exam
from mstkd.resources import DEFAULT_MODEL
from mstkd.trust import VALIDATION_KEY, assess_trust

OVERLAP = 0.5
WINDOWS_PER_BATCH = 4
# How the CPU of older PyTorch and Apple's GPU (MPS) say that memory ran out.
_OUT_OF_MEMORY_MESSAGES = ("out of memory", "can't allocate memory")
# Sliding-window progress is reported at most this often.
WINDOW_REPORT_INTERVAL_S = 0.25

T = TypeVar("T")


class Predictor:
    """A model (registry name or file, sha256-verified) on a device, ready to segment exams.

    Labels follow the model's own label rule and post-processing (recorded in its file);
    `label_rule` ('exclusive', 'independent', 'argmax'), `et_min_voxels` and `mirror_axes`
    (test-time mirroring along spatial axes 0-2; () for none) override them.
    `precision` is auto (bf16 on a GPU with bf16 tensor cores, else fp32), fp32 or bf16; `layout`
    the network's memory layout, auto (the device's fastest), default or channels_last.
    """

    def __init__(
        self,
        model: Union[str, Path] = DEFAULT_MODEL,
        device: str = DEFAULT_DEVICE,
        progress: Optional[ProgressCallback] = None,
        registry: Optional[Path] = None,
        overlap: float = OVERLAP,
        label_rule: Optional[str] = None,
        et_min_voxels: Optional[int] = None,
        mirror_axes: Optional[Sequence[int]] = None,
        precision: str = "auto",
        layout: str = "auto",
    ) -> None:
        self.device = resolve_device(device)
        inference_precision(self.device, precision)  # an unknown precision fails before loading
        self.precision = precision
        self.layout = check_layout(layout)
        tracker = ProgressTracker(progress)

        def downloading(done: int, total: int) -> None:
            size = f"{done / 1e6:.1f} of {total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
            tracker("load", 0.0, f"downloading model '{model}': {size}")

        resolved = resolve_model(model, registry, downloading)
        self.model = load_trained_model(resolved.path, self.device, resolved.sha256)
        self.name: str = resolved.name
        self.entry: Optional[ModelEntry] = resolved.entry
        self.overlap = overlap
        self._use_output(label_rule=label_rule, et_min_voxels=et_min_voxels, mirror_axes=mirror_axes)

    def with_output(
        self,
        label_rule: Optional[str] = None,
        et_min_voxels: Optional[int] = None,
        mirror_axes: Optional[Sequence[int]] = None,
    ) -> Predictor:
        """This predictor, sharing its loaded network, with other output settings (None: unchanged).

        This one is left as it was: a kept predictor (`mstkd serve`, the Slicer module) can serve a
        request that asks for one pass without changing the next request's.
        """
        other = copy.copy(self)
        other._use_output(label_rule=label_rule, et_min_voxels=et_min_voxels, mirror_axes=mirror_axes)
        return other

    def _use_output(self, mirror_axes: Optional[Sequence[int]], **changes: Any) -> None:
        axes = None if mirror_axes is None else tuple(mirror_axes)
        self.model = self.model.with_output(mirror_axes=axes, **changes)

    @property
    def path(self) -> Path:
        """The model file."""
        return self.model.path

    @property
    def sha256(self) -> str:
        """The model file's sha256."""
        return self.model.sha256

    def segment(
        self,
        sequences: Mapping[str, Optional[SequenceInput]],
        reference: Optional[str] = None,
        progress: Optional[ProgressCallback] = None,
        labels: Optional[str] = None,
        brain_extraction: str = DEFAULT_BRAIN_EXTRACTION,
        brain_mask: bool = False,
    ) -> SegmentationResult:
        """Segment an exam from any non-empty subset of sequences (files or images; aliases accepted).

        `reference` names the sequence whose grid the label map lands on (default: T1ce, FLAIR, T2,
        T1, the first present); `labels` converts the label map to another convention;
        `brain_extraction` is one of conventions.BRAIN_EXTRACTION_CHOICES ('auto': only when the
        exam is not skull-stripped); `brain_mask` also returns the brain mask on the reference grid.
        """
        check_choice(brain_extraction)  # a wrong choice fails before any reading
        report = ProgressTracker(progress)
        exam = read_exam(sequences, reference, report.span("load", *SPANS["load"]))
        return self._segment(exam, report, labels, brain_extraction, brain_mask)

    def segment_exam(
        self,
        exam: ExamInputs,
        progress: Optional[ProgressCallback] = None,
        labels: Optional[str] = None,
        brain_extraction: str = DEFAULT_BRAIN_EXTRACTION,
        brain_mask: bool = False,
    ) -> SegmentationResult:
        """Segment an exam read and checked already (`mstkd.preprocess.inputs.read_exam`)."""
        return self._segment(exam, ProgressTracker(progress), labels, brain_extraction, brain_mask)

    def _segment(
        self,
        inputs: ExamInputs,
        report: ProgressTracker,
        labels: Optional[str],
        brain_extraction: str,
        brain_mask: bool,
    ) -> SegmentationResult:
        output_labels = label_convention(labels) if labels else self.model.labels
        extraction_choice = check_choice(brain_extraction)
        timings: Dict[str, float] = {"read": inputs.read_s}

        def extract(exam_images: SequenceMap[sitk.Image]) -> BrainExtraction:
            return extract_brain(exam_images, extraction_choice, self._run_extractor)

        started = time.perf_counter()
        exam = prepare_exam(
            inputs.images,
            self.model.spacing,
            inputs.reference,
            _preparation_reporter(report),
            self.model.experiment.data.normalisation,
            extract,
            self.model.experiment.data.bias_correction,
        )
        extraction = exam.extraction
        timings["brain_extraction"] = extraction.seconds if extraction is not None else 0.0
        timings["preprocess"] = time.perf_counter() - started - timings["brain_extraction"]

        started = time.perf_counter()
        predicted, device, fallbacks, inference_step = self._infer(exam, report)
        timings["inference"] = time.perf_counter() - started
        implausible = extent_warning(predicted > 0, exam.mask)

        started = time.perf_counter()
        finish = report.span("postprocess", *SPANS["postprocess"])
        finish(0.0, f"placing the labels on the {DISPLAY_NAMES[exam.reference_name]} grid")
        image = labels_to_reference(predicted, exam)
        array = image_to_array(image)
        if output_labels.name != self.model.labels.name:
            array = convert_labels(array, self.model.labels.name, output_labels.name)
            image = array_to_image(array, reference=image)
        volumes = region_volumes_ml(array, output_labels, image.GetSpacing())
        mask_image = brain_mask_on_reference(exam) if brain_mask else None
        timings["postprocess"] = time.perf_counter() - started
        finish(1.0, f"segmented: whole tumour {volumes['WT']:.1f} mL")

        grid = "x".join(f"{s:g}" for s in image.GetSpacing())
        steps = [
            *exam.steps,
            inference_step,
            *fallbacks,
            f"labels placed on the {DISPLAY_NAMES[exam.reference_name]} grid "
            f"(size {'x'.join(str(s) for s in image.GetSize())}, spacing {grid} mm), "
            f"convention {output_labels.name}",
        ]
        return SegmentationResult(
            labels=image,
            label_convention=output_labels.name,
            volumes_ml=volumes,
            sequences=exam.subset.sequences,
            reference=exam.reference_name,
            model_name=self.name,
            model_path=self.model.path,
            model_sha256=self.model.sha256,
            device=str(device),
            timings_s=timings,
            steps=steps,
            fallbacks=fallbacks,
            warnings=[*self.model.warnings, *inputs.warnings, *([implausible] if implausible else [])],
            notes=[
                *(
                    {"kind": "registration", "text": found.describe(sequence, exam.reference_name)}
                    for sequence, found in exam.registrations.items()
                ),
                *({"kind": "fallback", "text": note} for note in fallbacks),
            ],
            brain_extraction=extraction.summary() if extraction is not None else None,
            brain_mask=mask_image,
            trust=assess_trust(exam.subset, self.model.metadata.get(VALIDATION_KEY)).summary(),
        )

    def _run_extractor(self, extractor: Extractor, image: sitk.Image) -> sitk.Image:
        """A brain-extraction tool on this predictor's device."""
        return run_extractor(extractor, image, str(self.device))

    def _infer(
        self, exam: PreparedExam, report: ProgressTracker
    ) -> Tuple[np.ndarray, torch.device, List[str], str]:
        """Sliding-window labels on the model grid; the device that made them; fallbacks; a step line."""
        infer = report.span("infer", *SPANS["infer"])

        def attempt(device: torch.device, windows_per_batch: int) -> Tuple[np.ndarray, int, int]:
            self._place(device)
            windows = _WindowProgress(infer, device, windows_per_batch)
            labels = predict_labels(
                self.model.network,
                self.model.patch,
                self.model.labels,
                exam.image,
                exam.present,
                device,
                self.overlap,
                bf16=inference_precision(device, self.precision).bf16,
                windows_per_batch=windows_per_batch,
                on_windows=windows,
                mask=exam.mask,
                output=self.model.experiment.output,
            )
            return labels, windows.total, windows_per_batch

        infer(0.0, f"segmenting on {self.device}")
        try:
            (labels, total, per_batch), device, fallbacks = run_with_fallback(
                attempt, self.device, lambda note: infer(0.0, note)
            )
        finally:
            self._place(self.device)
        step = (
            f"sliding-window inference on {device} in {inference_precision(device, self.precision)}: {total} "
            f"windows of {'x'.join(str(p) for p in self.model.patch)} voxels, {per_batch} per batch, "
            f"overlap {self.overlap:g}, over the brain's bounding box; {describe_output(self.model.output)}"
        )
        return labels, device, fallbacks, step

    def _place(self, device: torch.device) -> None:
        """The network on `device`, in the chosen memory layout (auto: the one it runs fastest there)."""
        self.model.network.to(device, memory_format=inference_memory_format(device, self.layout))


def run_with_fallback(
    run: Callable[[torch.device, int], T], device: torch.device, notify: Callable[[str], None]
) -> Tuple[T, torch.device, List[str]]:
    """`run(device, windows_per_batch)`; after a GPU runs out of memory, retry with 1 window (CUDA), then
    on the CPU; an Apple GPU (MPS) that lacks an operation the model needs also hands over to the CPU.

    Returns the result, the device that produced it, and one note per fallback taken.
    """
    attempts = [(device, WINDOWS_PER_BATCH)]
    if device.type == "cuda":
        attempts += [(device, 1), (torch.device("cpu"), WINDOWS_PER_BATCH)]
    elif device.type == "mps":
        attempts += [(torch.device("cpu"), WINDOWS_PER_BATCH)]
    notes: List[str] = []
    for index, (current, windows) in enumerate(attempts):
        last = index + 1 == len(attempts)
        try:
            return run(current, windows), current, notes
        except (RuntimeError, NotImplementedError) as error:  # torch.OutOfMemoryError is a RuntimeError
            reason = fallback_reason(error, current)
            if reason is None:
                raise
            if last:
                raise _out_of_memory() from None
        # Out of the except block, the failed attempt's tensors are unreferenced and can be freed.
        release_gpu_memory()
        following, following_windows = attempts[index + 1]
        retry = (
            f"with {following_windows} window per batch"
            if following == current
            else "on the CPU (slower; a GPU with more free memory would be faster)"
        )
        note = f"{current} {reason} with {windows} window(s) per batch; retried {retry}"
        notes.append(note)
        notify(note)
    raise AssertionError("unreachable: the last attempt returns or raises")


def fallback_reason(error: BaseException, device: torch.device) -> Optional[str]:
    """Why an attempt may be retried elsewhere ('ran out of memory', ...), or None for a real error."""
    text = str(error).lower()
    if isinstance(error, torch.cuda.OutOfMemoryError) or any(m in text for m in _OUT_OF_MEMORY_MESSAGES):
        return "ran out of memory"
    if device.type == "mps" and "mps" in text:
        return "lacks an operation this model needs"
    return None


class _WindowProgress:
    """Reports sliding-window progress with the time left, at most every WINDOW_REPORT_INTERVAL_S."""

    def __init__(self, report: StageReport, device: torch.device, per_batch: int) -> None:
        self.report = report
        self.where = f"on {device}, {per_batch} per batch"
        self.started = time.perf_counter()
        self.last = 0.0
        self.total = 0

    def __call__(self, done: int, total: int) -> None:
        self.total = total
        now = time.perf_counter()
        if done < total and now - self.last < WINDOW_REPORT_INTERVAL_S:
            return
        self.last = now
        left = (now - self.started) * (total - done) / max(done, 1)
        self.report(done / total, f"window {done} of {total} ({self.where})", round(left, 1))


def _preparation_reporter(report: ProgressTracker) -> Callable[[str, float], None]:
    """prepare_exam's (what it does, fraction) reports as overall events of the preprocessing span."""
    start, end = SPANS["preprocess"]

    def forward(doing: str, fraction: float) -> None:
        report(_preparation_stage(doing), start + (end - start) * min(max(fraction, 0.0), 1.0), doing)

    return forward


def _preparation_stage(doing: str) -> str:
    """The event stage of one of prepare_exam's reports ('checking the inputs' -> 'preflight')."""
    words = doing.lower()
    stages = {
        "check": "preflight",
        "extract": "brain-extraction",
        "regist": "register",
        "resampl": "resample",
    }
    for stem, stage in stages.items():
        if stem in words:
            return stage
    return "preprocess"


def _out_of_memory() -> MSTKDError:
    return MSTKDError(
        "Not enough memory (RAM) to segment this exam on the CPU; close other programs, or use a machine "
        "with more memory or a GPU."
    )


def release_gpu_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if mps_available():
        torch.mps.empty_cache()
