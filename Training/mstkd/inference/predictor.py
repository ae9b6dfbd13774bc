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

import gc
import time
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Tuple, TypeVar, Union

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
    sequence_map,
)
from mstkd.devices import resolve_device, supports_bf16
from mstkd.errors import MSTKDError
from mstkd.imageio import array_to_image, image_to_array, read_image
from mstkd.inference.events import ProgressCallback, ProgressTracker
from mstkd.inference.model_file import load_trained_model
from mstkd.inference.registry import ModelEntry, resolve_model
from mstkd.inference.result import SegmentationResult
from mstkd.inference.volumes import region_volumes_ml
from mstkd.prediction.labelmap import predict_labels
from mstkd.preprocess import PreparedExam, brain_mask_on_reference, labels_to_reference, prepare_exam
from mstkd.preprocess.brain_extraction import BrainExtraction, Extractor, check_choice, extract_brain
from mstkd.preprocess.extractors import run_extractor
from mstkd.preprocess.reference import choose_reference
from mstkd.resources import DEFAULT_MODEL
from mstkd.trust import VALIDATION_KEY, assess_trust

OVERLAP = 0.5
WINDOWS_PER_BATCH = 4
# Where each stage sits in the overall fraction (about its share of a CPU run on a BraTS-size exam).
SPANS: Dict[str, Tuple[float, float]] = {
    "load": (0.0, 0.08),
    "preprocess": (0.08, 0.3),  # preflight, register, resample, normalise
    "infer": (0.3, 0.9),
    "postprocess": (0.9, 1.0),
}
# Sliding-window progress is reported at most this often.
WINDOW_REPORT_INTERVAL_S = 0.25

SequenceInput = Union[str, Path, sitk.Image]
T = TypeVar("T")


class Predictor:
    """A model (registry name or file, sha256-verified) on a device, ready to segment exams."""

    def __init__(
        self,
        model: Union[str, Path] = DEFAULT_MODEL,
        device: str = DEFAULT_DEVICE,
        progress: Optional[ProgressCallback] = None,
        registry: Optional[Path] = None,
        overlap: float = OVERLAP,
    ) -> None:
        self.device = resolve_device(device)
        tracker = ProgressTracker(progress)

        def downloading(done: int, total: int) -> None:
            size = f"{done / 1e6:.1f} of {total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
            tracker("load", 0.0, f"downloading model '{model}': {size}")

        resolved = resolve_model(model, registry, downloading)
        self.model = load_trained_model(resolved.path, self.device, resolved.sha256)
        self.name: str = resolved.name
        self.entry: Optional[ModelEntry] = resolved.entry
        self.overlap = overlap

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
        report = ProgressTracker(progress)
        output_labels = label_convention(labels) if labels else self.model.labels
        inputs = sequence_map(sequences)
        reference = choose_reference(inputs, reference)
        extraction_choice = check_choice(brain_extraction)
        timings: Dict[str, float] = {}

        started = time.perf_counter()
        images = _read_all(inputs, report.span("load", *SPANS["load"]))
        timings["read"] = time.perf_counter() - started

        def extract(exam_images: SequenceMap[sitk.Image]) -> BrainExtraction:
            return extract_brain(exam_images, extraction_choice, self._run_extractor)

        started = time.perf_counter()
        exam = prepare_exam(images, self.model.spacing, reference, _preparation_reporter(report), extract)
        extraction = exam.extraction
        timings["brain_extraction"] = extraction.seconds if extraction is not None else 0.0
        timings["preprocess"] = time.perf_counter() - started - timings["brain_extraction"]

        started = time.perf_counter()
        predicted, device, fallbacks, inference_step = self._infer(exam, report)
        timings["inference"] = time.perf_counter() - started

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
            self.model.network.to(device)
            windows = _WindowProgress(infer, device, windows_per_batch)
            labels = predict_labels(
                self.model.network,
                self.model.patch,
                self.model.labels,
                exam.image,
                exam.present,
                device,
                self.overlap,
                bf16=_uses_bf16(device),
                windows_per_batch=windows_per_batch,
                on_windows=windows,
                mask=exam.mask,
            )
            return labels, windows.total, windows_per_batch

        infer(0.0, f"segmenting on {self.device}")
        try:
            (labels, total, per_batch), device, fallbacks = run_with_fallback(
                attempt, self.device, lambda note: infer(0.0, note)
            )
        finally:
            self.model.network.to(self.device)
        step = (
            f"sliding-window inference on {device} ({'bf16' if _uses_bf16(device) else 'fp32'}): {total} "
            f"windows of {'x'.join(str(p) for p in self.model.patch)} voxels, {per_batch} per batch, "
            f"overlap {self.overlap:g}, over the brain's bounding box"
        )
        return labels, device, fallbacks, step


def run_with_fallback(
    run: Callable[[torch.device, int], T], device: torch.device, notify: Callable[[str], None]
) -> Tuple[T, torch.device, List[str]]:
    """`run(device, windows_per_batch)`; after CUDA runs out of memory, retry with 1 window, then on the CPU.

    Returns the result, the device that produced it, and one note per fallback taken.
    """
    attempts = [(device, WINDOWS_PER_BATCH)]
    if device.type == "cuda":
        attempts += [(device, 1), (torch.device("cpu"), WINDOWS_PER_BATCH)]
    notes: List[str] = []
    for index, (current, windows) in enumerate(attempts):
        last = index + 1 == len(attempts)
        try:
            return run(current, windows), current, notes
        except torch.cuda.OutOfMemoryError:  # torch.OutOfMemoryError: CPU allocations raise it too
            if last:
                raise _out_of_memory() from None
        except RuntimeError as error:
            if last and "can't allocate memory" in str(error):  # older PyTorch on the CPU
                raise _out_of_memory() from None
            raise
        # Out of the except block, the failed attempt's tensors are unreferenced and can be freed.
        _release_cuda_memory()
        following, following_windows = attempts[index + 1]
        retry = (
            f"with {following_windows} window per batch"
            if following == current
            else "on the CPU (slower; a GPU with more free memory would be faster)"
        )
        note = f"{current} ran out of memory with {windows} window(s) per batch; retried {retry}"
        notes.append(note)
        notify(note)
    raise AssertionError("unreachable: the last attempt returns or raises")


class _WindowProgress:
    """Reports sliding-window progress with the time left, at most every WINDOW_REPORT_INTERVAL_S."""

    def __init__(self, report: Callable[[float, str], None], device: torch.device, per_batch: int) -> None:
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
        self.report(done / total, f"window {done} of {total} ({self.where}), about {left:.0f} s left")


def _read_all(
    inputs: SequenceMap[SequenceInput], report: Callable[[float, str], None]
) -> SequenceMap[sitk.Image]:
    """Each input as an image: files are read, images pass through."""
    images: Dict[str, sitk.Image] = {}
    for index, (sequence, item) in enumerate(inputs.items()):
        if isinstance(item, sitk.Image):
            images[sequence] = item
            continue
        if not isinstance(item, (str, Path)):
            raise MSTKDError(
                f"The {DISPLAY_NAMES[sequence]} input is a {type(item).__name__}; give a file path or a "
                "SimpleITK image."
            )
        report(index / len(inputs), f"reading {DISPLAY_NAMES[sequence]} ({Path(item).name})")
        images[sequence] = read_image(item)
    report(1.0, f"read {', '.join(DISPLAY_NAMES[s] for s in images)}")
    return SequenceMap(images)


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


def _uses_bf16(device: torch.device) -> bool:
    """bf16 autocast on a GPU that supports it; the CPU runs fp32 (bf16 is slow on most CPUs)."""
    return device.type == "cuda" and supports_bf16(device)


def _out_of_memory() -> MSTKDError:
    return MSTKDError(
        "Not enough memory (RAM) to segment this exam on the CPU; close other programs, or use a machine "
        "with more memory or a GPU."
    )


def _release_cuda_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
