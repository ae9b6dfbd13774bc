"""Scoring a folder of predicted label maps against ground truth in any supported layout."""

from __future__ import annotations

import csv
import io
import json
import sys
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from mstkd.cases import (
    DUPLICATE_CASE,
    DUPLICATE_FILE,
    UNREADABLE_FOLDER,
    Case,
    discover_cases,
    name_a_few,
)
from mstkd.conventions import DEFAULT_LABELS, LabelConvention, check_labels, label_convention
from mstkd.errors import MSTKDError
from mstkd.files import write_text
from mstkd.imageio import (
    PathLike,
    describe_grid,
    image_extension,
    image_to_array,
    read_image,
    same_grid,
    strip_image_extension,
)
from mstkd.metrics import (
    DEFAULT_METRIC_CONVENTION,
    ConventionLike,
    MetricConvention,
    RegionScore,
    metric_convention,
    region_scores,
    scored_regions,
)
from mstkd.progress import progress

Warn = Callable[[str], None]
# How a later run knows a report as mstkd's (and may replace it): the JSON's "written_by", the CSV's
# header ("case", the values per region, then these columns).
REPORT_WRITER = "mstkd evaluate"
CSV_LAST_COLUMNS = ("prediction_missing", "convention")


def warn_on_stderr(message: str) -> None:
    """Print a warning on stderr, keeping stdout for results."""
    print(f"warning: {message}", file=sys.stderr)


@dataclass(frozen=True)
class CaseScores:
    """Dice and HD95 of each region of one case; `prediction_missing` marks a penalised case."""

    case_id: str
    regions: Mapping[str, RegionScore]
    prediction_missing: bool = False


@dataclass(frozen=True)
class Evaluation:
    """Per-case scores of a set of predictions, with the conventions that produced them."""

    convention: MetricConvention
    labels: LabelConvention
    cases: Tuple[CaseScores, ...]

    def mean(self) -> Dict[str, RegionScore]:
        """Mean Dice and HD95 of each region over the cases."""
        return self._summarise(np.mean)

    def std(self) -> Dict[str, RegionScore]:
        """Standard deviation (population) of Dice and HD95 of each region over the cases."""
        return self._summarise(np.std)

    @property
    def regions(self) -> Tuple[str, ...]:
        """The scored regions in report order."""
        return scored_regions([c.regions for c in self.cases])

    def to_json(self) -> Dict[str, Any]:
        """The report as a JSON-ready dict: convention, per-case scores, means."""
        return {
            "written_by": REPORT_WRITER,
            "convention": self.convention.name,
            "cases": [{"case": c.case_id, **_as_dicts(c.regions)} for c in self.cases],
            "mean": _as_dicts(self.mean()),
        }

    def write_json(self, path: PathLike) -> Path:
        """Write `to_json()` to a file; returns the path."""
        return write_text(path, self.json_text())

    def write_csv(self, path: PathLike) -> Path:
        """Write `csv_text()` to a file; returns the path."""
        return write_text(path, self.csv_text())

    def json_text(self) -> str:
        """`to_json()` as the text of a file."""
        return json.dumps(self.to_json(), indent=2) + "\n"

    def csv_text(self) -> str:
        """One row per case: each value per region, the missing flag, the convention."""
        stream = io.StringIO()
        writer = csv.writer(stream, lineterminator="\n")
        metrics = self.convention.metrics
        writer.writerow(["case", *(f"{r}_{m}" for r in self.regions for m in metrics), *CSV_LAST_COLUMNS])
        for case in self.cases:
            scores = [case.regions[r].values()[m] for r in self.regions for m in metrics]
            writer.writerow([case.case_id, *scores, case.prediction_missing, self.convention.name])
        return stream.getvalue()

    def table(self) -> str:
        """A plain-text summary: mean and std per region, number of cases, conventions named."""
        mean, std = self.mean(), self.std()
        missing = sum(c.prediction_missing for c in self.cases)
        lines = [
            f"Metric convention: {self.convention.name} ({self.convention.description})",
            f"Labels: {self.labels.name}; cases: {len(self.cases)}"
            + (f", {missing} of them without a prediction (penalised)" if missing else ""),
            f"{'Region':<7}{'Dice mean':>11}{'Dice std':>10}{'HD95 mean':>11}{'HD95 std':>10}{'Cases':>7}"
            + "".join(f"{name:>{len(name) + 2}}" for name in self.convention.extra_metrics),
        ]
        for region in self.regions:
            lines.append(
                f"{region:<7}{mean[region].dice:>11.4f}{std[region].dice:>10.4f}"
                f"{mean[region].hd95:>11.2f}{std[region].hd95:>10.2f}{len(self.cases):>7}"
                + "".join(
                    f"{mean[region].extra[name]:>{len(name) + 2}.{4 if 'dice' in name else 2}f}"
                    for name in self.convention.extra_metrics
                )
            )
        return "\n".join(lines)

    def _summarise(self, reduce: Callable[[List[float]], Any]) -> Dict[str, RegionScore]:
        summary = {}
        for region in self.regions:
            values = {
                name: float(reduce([c.regions[region].values()[name] for c in self.cases]))
                for name in self.convention.metrics
            }
            summary[region] = RegionScore(values.pop("dice"), values.pop("hd95"), values)
        return summary


def evaluate_folders(
    gt_dir: PathLike,
    pred_dir: PathLike,
    convention: ConventionLike = DEFAULT_METRIC_CONVENTION,
    labels: str = DEFAULT_LABELS,
    warn: Warn = warn_on_stderr,
) -> Evaluation:
    """Score `<pred_dir>/<case_id>.nii.gz` (or .nii/.nrrd/.nhdr) against every segmented case of `gt_dir`."""
    rule, label_rule = metric_convention(convention), label_convention(labels)
    discovery = discover_cases(gt_dir)
    for problem in discovery.problems:
        if problem.kind in (DUPLICATE_FILE, DUPLICATE_CASE, UNREADABLE_FOLDER):
            warn(problem.message)
    cases = [c for c in discovery.cases if c.segmentation is not None]
    unsegmented = [c.case_id for c in discovery.cases if c.segmentation is None]
    if not cases:
        raise MSTKDError(
            f"No case under {gt_dir} has a segmentation; ground truth files are named like "
            f"<case>_seg.nii.gz (found cases {name_a_few(unsegmented)} without one)."
        )
    if unsegmented:
        warn(f"skipped {len(unsegmented)} case(s) without a segmentation: {name_a_few(unsegmented)}")

    predictions = _prediction_files(pred_dir)
    matched = {c.case_id: predictions.get(c.case_id) for c in cases}
    missing = [case_id for case_id, path in matched.items() if path is None]
    if len(missing) == len(cases):
        raise MSTKDError(
            f"No prediction in {pred_dir} matches a case of {gt_dir}; name each prediction "
            f"<case_id>.nii.gz, e.g. {cases[0].case_id}.nii.gz (found {name_a_few(sorted(predictions))})."
        )
    if missing:
        warn(
            f"no prediction for {len(missing)} case(s): {name_a_few(missing)}; scored as empty predictions "
            f"under {rule.name}: {rule.empty_prediction_rule()}"
        )
    unmatched = sorted(set(predictions) - set(matched))
    if unmatched:
        warn(f"ignored {len(unmatched)} prediction(s) that match no case: {name_a_few(unmatched)}")

    # Closed before an error propagates, so that its message starts on a clean line.
    with closing(progress(cases, "Evaluating", total=len(cases))) as bar:
        scores = [evaluate_case_files(case, matched[case.case_id], rule, label_rule) for case in bar]
    return Evaluation(rule, label_rule, tuple(scores))


def evaluate_case_files(
    case: Case, prediction: Optional[Path], convention: ConventionLike, labels: LabelConvention
) -> CaseScores:
    """Score one case's prediction file against its segmentation; no prediction scores as empty."""
    if case.segmentation is None:
        raise MSTKDError(f"Case '{case.case_id}' has no segmentation to score against.")
    reference_image, reference = _read_label_map(case.segmentation, labels, "ground truth")
    if prediction is None:
        predicted = np.zeros_like(reference)
    else:
        predicted_image, predicted = _read_label_map(prediction, labels, "prediction")
        if not same_grid(reference_image, predicted_image):
            raise MSTKDError(
                f"The prediction {prediction} is not on the grid of its ground truth {case.segmentation}: "
                f"prediction {describe_grid(predicted_image)}; "
                f"ground truth {describe_grid(reference_image)}. Resample the prediction onto that grid."
            )
    scores = region_scores(reference, predicted, labels, reference_image.GetSpacing(), convention)
    return CaseScores(case.case_id, scores, prediction is None)


def _read_label_map(path: Path, labels: LabelConvention, what: str) -> Tuple[sitk.Image, np.ndarray]:
    image = read_image(path)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise MSTKDError(f"The {what} {path} has several components per voxel; give a single label map.")
    array = image_to_array(image)
    if array.dtype.kind == "f" and not np.array_equal(array, np.round(array)):
        raise MSTKDError(f"The {what} {path} holds non-integer values; give a label map, not probabilities.")
    check_labels(array, labels, what=f"{what} {path}")
    return image, array.astype(np.int16, copy=False)


def _prediction_files(pred_dir: PathLike) -> Dict[str, Path]:
    """Prediction files by case id (the file name without its image extension)."""
    pred_dir = Path(pred_dir)
    if pred_dir.is_file():
        raise MSTKDError(
            f"--pred {pred_dir} is a file; give the folder that holds <case_id>.nii.gz predictions."
        )
    if not pred_dir.is_dir():
        raise MSTKDError(f"Prediction folder not found: {pred_dir}. Check the path.")
    found: Dict[str, List[Path]] = {}
    for path in sorted(pred_dir.iterdir()):
        if path.is_file() and not path.name.startswith(".") and image_extension(path):
            found.setdefault(strip_image_extension(path), []).append(path)
    for case_id, paths in found.items():
        if len(paths) > 1:
            raise MSTKDError(
                f"Case '{case_id}' has {len(paths)} predictions in {pred_dir}: "
                f"{', '.join(p.name for p in paths)}; keep one."
            )
    return {case_id: paths[0] for case_id, paths in found.items()}


def _as_dicts(scores: Mapping[str, RegionScore]) -> Dict[str, Dict[str, float]]:
    return {region: score.values() for region, score in scores.items()}


def is_our_report(path: PathLike) -> bool:
    """True for a JSON or CSV report written by `Evaluation.write_json` / `write_csv`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    header = next(csv.reader(io.StringIO(text)), None) or []
    if header[:1] == ["case"] and tuple(header[-len(CSV_LAST_COLUMNS) :]) == CSV_LAST_COLUMNS:
        return True
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("written_by") == REPORT_WRITER


def evaluation_inputs(gt_dir: PathLike, pred_dir: PathLike) -> Dict[str, Path]:
    """Every image file of the ground truth and prediction folders, named for messages."""
    found: Dict[str, Path] = {}
    for folder, what, paths in (
        (gt_dir, "ground truth file", lambda f: f.rglob("*")),
        (pred_dir, "prediction", lambda f: f.iterdir()),
    ):
        folder = Path(folder)
        if folder.is_dir():
            for path in paths(folder):
                if image_extension(path) and path.is_file():
                    found[f"{what} {path.name}"] = path
    return found
