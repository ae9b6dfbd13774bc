"""The missing-modality evaluation protocol: one model, every subset, Dice and HD95 per region.

Tables follow the papers' column order of subsets (conventions.SUBSETS) so they can be laid
beside the published ones, and every report names its protocol, label rule, convention, split,
cases and model.

Two protocols:
- `whole-volume` (ours): sliding windows over the brain's bounding box, the model's own label
  rule and post-processing, HD95 in millimetres.
- `reference` (the MST-KDNet code's test loop): the model's input normalisation over each whole
  volume, ONE forward pass on a centre crop of the model's patch size placed as the code places
  it (start (side - patch - 1) // 2), each channel thresholded at 0.5 on its own (the
  `independent` rule), scores on that crop only, HD95 in voxels. With `mstkdnet-ref` scores
  (its default) this is the code's formula; differences between the two protocols then come
  from the crop, the rule and the convention, each of which can be switched separately.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from mstkd.bias_field import correct_bias
from mstkd.cases import Case
from mstkd.conventions import (
    PROTOCOLS,
    REFERENCE_PROTOCOL,
    SEQUENCES,
    WHOLE_VOLUME_PROTOCOL,
    Subset,
    check_labels,
)
from mstkd.errors import MSTKDError
from mstkd.experiment.sections import OutputConfig
from mstkd.files import write_text
from mstkd.imageio import image_to_array, read_image, same_grid
from mstkd.inference.model_file import TrainedModel
from mstkd.intensity import brain_mask, normalise_sequences
from mstkd.metrics import MetricConvention, RegionScore, region_scores, scored_regions
from mstkd.prediction.labelmap import predict_labels
from mstkd.prediction.labelrule import INDEPENDENT, describe_output, probabilities_to_labels
from mstkd.prediction.window import score_function

AVERAGE = "average"
# The values a markdown table shows (Dice in %, HD95 in mm); the CSV and JSON tables hold every value.
MARKDOWN_COLUMNS = {
    "dice": "Dice",
    "hd95": "HD95",
    "global_dice": "global Dice",
    "global_hd95": "global HD95",
}
WHOLE_VOLUME, REFERENCE = WHOLE_VOLUME_PROTOCOL, REFERENCE_PROTOCOL
# The files `ProtocolResult.write` puts in its folder; each begins with the header (JSON: its fields).
TABLE_FILES = ("table.md", "table.csv", "table.json", "cases.csv")
HEADER_START = "protocol: "
MARKDOWN_HEADER_START = "<!-- "
CSV_HEADER_START = "# "
# What the reference protocol keeps of the code: its rule and its voxel-unit distances.
REFERENCE_OUTPUT = OutputConfig(label_rule=INDEPENDENT, threshold=0.5)
VOXEL_SPACING = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class SubsetScore:
    """The scores of one case under one subset of sequences."""

    case_id: str
    subset: Subset
    regions: Dict[str, RegionScore]


@dataclass
class ProtocolResult:
    """All case-subset scores of one model, with what a report must name."""

    scores: List[SubsetScore]
    subsets: Sequence[Subset]
    convention: MetricConvention
    split: str
    model_path: Path
    model_sha256: str
    protocol: str = WHOLE_VOLUME
    output: str = ""  # the label rule and post-processing, as describe_output words them

    @property
    def case_count(self) -> int:
        """How many cases were evaluated."""
        return len({s.case_id for s in self.scores})

    @property
    def regions(self) -> Tuple[str, ...]:
        """The scored regions in report order."""
        return scored_regions([s.regions for s in self.scores])

    def table(self) -> List[Dict[str, object]]:
        """One row per subset (paper order) and an average row: the mean of each value per region."""
        rows = []
        for subset in self.subsets:
            chosen = [s for s in self.scores if s.subset == subset]
            rows.append({"subset": subset.name, **_means(chosen, self.convention.metrics, self.regions)})
        per_subset = [{k: v for k, v in row.items() if k != "subset"} for row in rows]
        rows.append(
            {"subset": AVERAGE, **{k: float(np.mean([r[k] for r in per_subset])) for k in per_subset[0]}}
        )
        return rows

    def header(self) -> str:
        """What the numbers are: convention, split, number of cases, model identity."""
        return (
            f"{HEADER_START}{self.protocol}; {self.output}; metric convention: {self.convention.name}; "
            f"split: {self.split}; cases: {self.case_count}; "
            f"model: {self.model_path.name} sha256 {self.model_sha256}"
        )

    def markdown(self) -> str:
        """The table as markdown, Dice in % and HD95 in mm, under its header."""
        shown = [(m, r) for m in self.convention.metrics if m in MARKDOWN_COLUMNS for r in self.regions]
        columns = [f"{MARKDOWN_COLUMNS[m]} {r}" for m, r in shown]
        lines = [f"{MARKDOWN_HEADER_START}{self.header()} -->", "| subset | " + " | ".join(columns) + " |"]
        lines.append("|---" * (len(columns) + 1) + "|")
        for row in self.table():
            values = [
                f"{100 * row[f'{m}_{r}']:.1f}" if m.endswith("dice") else f"{row[f'{m}_{r}']:.2f}"
                for m, r in shown
            ]
            lines.append(f"| {row['subset']} | " + " | ".join(values) + " |")
        return "\n".join(lines)

    def write(self, folder: Path) -> Dict[str, Path]:
        """Write table.md, table.csv, table.json and cases.csv into `folder` (each verified)."""
        table = self.table()
        tables, cases = io.StringIO(), io.StringIO()
        for stream in (tables, cases):
            stream.write(f"{CSV_HEADER_START}{self.header()}\n")
        writer = csv.DictWriter(tables, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
        rows = csv.writer(cases)
        metrics = self.convention.metrics
        rows.writerow(["case", "subset", "region", *metrics])
        for score in self.scores:
            for region, value in score.regions.items():
                values = value.values()
                rows.writerow([score.case_id, score.subset.name, region, *(values[m] for m in metrics)])
        markdown, table_csv, table_json, cases_csv = TABLE_FILES
        texts = {
            markdown: self.markdown() + "\n",
            table_csv: tables.getvalue(),
            table_json: json.dumps(self.to_json(), indent=2),
            cases_csv: cases.getvalue(),
        }
        return {name: write_text(folder / name, text) for name, text in texts.items()}

    def to_json(self) -> Dict[str, object]:
        """Header fields and the table, as JSON-ready data."""
        return {
            "protocol": self.protocol,
            "output": self.output,
            "convention": self.convention.name,
            "split": self.split,
            "cases": self.case_count,
            "model": str(self.model_path),
            "sha256": self.model_sha256,
            "table": self.table(),
        }


def is_our_table(path: Path) -> bool:
    """True for a file `ProtocolResult.write` wrote: it begins with the evaluation's header."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    if text.startswith((MARKDOWN_HEADER_START + HEADER_START, CSV_HEADER_START + HEADER_START)):
        return True
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and {"protocol", "sha256", "table"} <= data.keys()


def evaluate_model(
    model: TrainedModel,
    cases: Sequence[Case],
    subsets: Sequence[Subset],
    convention: MetricConvention,
    device: torch.device,
    split: str,
    overlap: float = 0.5,
    bf16: bool = False,
    on_case: Optional[Callable[[str], None]] = None,
    protocol: str = WHOLE_VOLUME,
) -> ProtocolResult:
    """Segment every case from every subset under `protocol` and score it."""
    if protocol not in PROTOCOLS:
        raise MSTKDError(f"Unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}.")
    labels = model.labels
    scores = []
    for case in cases:
        images, truth, spacing = _read_case(case, labels)
        images = correct_bias(images, spacing, model.experiment.data.bias_correction)
        if protocol == REFERENCE:
            box = reference_crop(truth.shape, model.patch)
            truth, spacing = _crop(truth, box, model.patch), VOXEL_SPACING
        for subset in subsets:
            if protocol == REFERENCE:
                predicted = segment_crop(model, images, subset, device, box)
            else:
                predicted = segment_array(model, images, subset, device, overlap, bf16)
            scores.append(
                SubsetScore(
                    case.case_id, subset, region_scores(truth, predicted, labels, spacing, convention)
                )
            )
        if on_case is not None:
            on_case(case.case_id)
    output = REFERENCE_OUTPUT if protocol == REFERENCE else model.output
    return ProtocolResult(
        scores, subsets, convention, split, model.path, model.sha256, protocol, describe_output(output)
    )


def reference_crop(shape: Sequence[int], patch: Sequence[int]) -> Tuple[slice, ...]:
    """The MST-KDNet code's centre crop: start (side - patch - 1) // 2, or 0 where that is negative."""
    starts = [max((side - size - 1) // 2, 0) for side, size in zip(shape, patch)]
    return tuple(slice(start, start + size) for start, size in zip(starts, patch))


def segment_crop(
    model: TrainedModel, images: np.ndarray, subset: Subset, device: torch.device, box: Tuple[slice, ...]
) -> np.ndarray:
    """The reference protocol's labels of one crop: normalise whole volumes, crop, one forward pass,
    each channel thresholded on its own."""
    present = subset.mask
    normalised = _crop(
        normalise_sequences(images, present, model.experiment.data.normalisation), box, model.patch
    )
    with torch.inference_mode():
        batch = torch.from_numpy(np.ascontiguousarray(normalised))[None].to(device)
        probabilities = score_function(model.network, present)(batch).float()[0].cpu()
    rule = REFERENCE_OUTPUT
    return probabilities_to_labels(probabilities, model.labels, rule.rule, rule.threshold).numpy()


def _crop(array: np.ndarray, box: Tuple[slice, ...], patch: Sequence[int]) -> np.ndarray:
    """`array[..., box]`, zero-padded at the far end where the volume is smaller than the patch."""
    cropped = array[(Ellipsis, *box)]
    missing = [(0, size - side) for side, size in zip(cropped.shape[-3:], patch)]
    return np.pad(cropped, [(0, 0)] * (cropped.ndim - 3) + missing)


def segment_array(
    model: TrainedModel, images: np.ndarray, subset: Subset, device: torch.device, overlap: float, bf16: bool
) -> np.ndarray:
    """Label map of a (4, X, Y, Z) co-registered exam from the sequences of `subset` only."""
    present = subset.mask
    normalised = normalise_sequences(images, present, model.experiment.data.normalisation)
    mask = brain_mask(images, present)
    return predict_labels(
        model.network,
        model.patch,
        model.labels,
        normalised,
        present,
        device,
        overlap,
        bf16,
        mask=mask,
        output=model.experiment.output,
    )


def _read_case(case: Case, labels) -> tuple:
    if case.missing or case.segmentation is None:
        raise MSTKDError(f"Case {case.case_id} lacks {', '.join(case.missing) or 'its segmentation'}.")
    images = [read_image(case.sequences[s]) for s in SEQUENCES]
    truth_image = read_image(case.segmentation)
    for sequence, image in zip(SEQUENCES, images):
        if not same_grid(image, truth_image):
            raise MSTKDError(
                f"Case {case.case_id}: {sequence} is not on its segmentation's grid; the protocol needs "
                "co-registered sequences (BraTS-style). Use `mstkd segment` for clinical exams."
            )
    truth = image_to_array(truth_image)
    check_labels(truth, labels, f"segmentation of case {case.case_id}")
    return np.stack([image_to_array(i).astype(np.float32) for i in images]), truth, truth_image.GetSpacing()


def _means(scores: Sequence[SubsetScore], metrics: Sequence[str], regions: Sequence[str]) -> Dict[str, float]:
    return {
        f"{metric}_{region}": float(np.mean([s.regions[region].values()[metric] for s in scores]))
        for metric in metrics
        for region in regions
    }
