"""`mstkd bench brain-extraction`: what brain extraction costs the tumour's Dice on phantoms with a head.

Each case is a clinical phantom with its head (`mstkd phantom --with-skull --native`) segmented
three ways with the same model: as it comes (brain extraction `auto`), skull-stripped with the
true brain mask (what a perfect extraction gives; `auto` must then run nothing), and as it comes
with no extraction at all (what the model did before). For each: the tumour's Dice per region
against the ground truth; for the first also what `auto` decided, how long the tool took, and
the Dice of its brain mask against the true one, all on the reference volume's grid.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import SimpleITK as sitk

from mstkd.conventions import DISPLAY_NAMES, REGIONS, SequenceMap, Subset
from mstkd.imageio import image_to_array
from mstkd.inference.predictor import Predictor
from mstkd.metrics import dice, region_scores
from mstkd.phantom.generate import PhantomCase, generate_case
from mstkd.preprocess.reference import choose_reference

WAYS = ("extracted", "stripped", "unextracted")


@dataclass(frozen=True)
class ExtractionRow:
    """One case: what `auto` did on the head, its mask's Dice, and the tumour's Dice each way."""

    case: str
    method: str
    sequence: Optional[str]
    seconds: float
    stripped_detected: bool
    mask_dice: float
    tumour_dice: Dict[str, Dict[str, float]]  # way -> region -> Dice


def true_brain_on(case: PhantomCase, sequence: str) -> sitk.Image:
    """The case's true brain mask (uint8) on the native grid of a sequence."""
    return sitk.Resample(
        case.brain_mask,
        case.native_images[sequence],
        case.native_motions[sequence],
        sitk.sitkNearestNeighbor,
        0,
        sitk.sitkUInt8,
    )


def stripped_exam(case: PhantomCase, subset: Subset) -> SequenceMap[sitk.Image]:
    """The native images of a phantom with a head, 0 outside the true brain: a perfect extraction."""
    stripped = {}
    for sequence in subset.sequences:
        image = case.native_images[sequence]
        stripped[sequence] = sitk.Mask(image, true_brain_on(case, sequence))
    return SequenceMap(stripped)


def bench_brain_extraction(
    predictor: Predictor, seed: int, cases: int, shape: Sequence[int], subset: Subset
) -> List[ExtractionRow]:
    """Generate `cases` phantoms with a head (`seed`, `shape`) and measure each (see the module)."""
    rows = []
    for index in range(cases):
        case = generate_case(seed, index, shape, native=True, with_skull=True)
        head = SequenceMap({s: case.native_images[s] for s in subset.sequences})
        reference = choose_reference(head)
        truth = image_to_array(
            sitk.Resample(
                case.labels,
                case.native_images[reference],
                case.native_motions[reference],
                sitk.sitkNearestNeighbor,
                0,
                case.labels.GetPixelID(),
            )
        )
        labels = predictor.model.labels
        results = {
            "extracted": predictor.segment(head, brain_extraction="auto", brain_mask=True),
            "stripped": predictor.segment(stripped_exam(case, subset), brain_extraction="auto"),
            "unextracted": predictor.segment(head, brain_extraction="none"),
        }
        scores = {
            way: {
                region: score.dice
                for region, score in region_scores(truth, image_to_array(result.labels), labels).items()
            }
            for way, result in results.items()
        }
        extraction = results["extracted"].brain_extraction
        true_mask = image_to_array(true_brain_on(case, reference))
        rows.append(
            ExtractionRow(
                case=f"seed {seed} case {index}",
                method=extraction["method"],
                sequence=extraction["sequence"],
                seconds=extraction["seconds"],
                stripped_detected=results["stripped"].brain_extraction["method"] == "none",
                mask_dice=dice(true_mask, image_to_array(results["extracted"].brain_mask) > 0),
                tumour_dice=scores,
            )
        )
    return rows


def format_table(rows: Sequence[ExtractionRow]) -> str:
    """A Markdown table: one line per case, then the medians."""
    regions = list(REGIONS)
    header = (
        "| case | auto on the head | auto on the stripped exam | brain mask Dice | "
        + " | ".join(f"{r} extracted / stripped / none" for r in regions)
        + " |"
    )
    lines = [header, "|" + "---|" * (4 + len(regions))]
    for row in rows:
        tool = "none"
        if row.sequence:
            tool = f"{row.method} on {DISPLAY_NAMES[row.sequence]}, {row.seconds:.1f} s"
        cells = [row.case, tool, "none (stripped)" if row.stripped_detected else "ran a tool"]
        cells.append(f"{row.mask_dice:.3f}")
        cells += [" / ".join(f"{row.tumour_dice[w][r]:.3f}" for w in WAYS) for r in regions]
        lines.append("| " + " | ".join(cells) + " |")
    medians = [
        " / ".join(f"{statistics.median(row.tumour_dice[w][r] for row in rows):.3f}" for w in WAYS)
        for r in regions
    ]
    mask = statistics.median(row.mask_dice for row in rows)
    lines.append("| median | | | " + f"{mask:.3f} | " + " | ".join(medians) + " |")
    return "\n".join(lines)


def largest_gap(rows: Sequence[ExtractionRow]) -> float:
    """The largest |Dice extracted - Dice stripped| over cases and regions."""
    return float(
        np.max(
            [
                abs(row.tumour_dice["extracted"][r] - row.tumour_dice["stripped"][r])
                for row in rows
                for r in REGIONS
            ]
        )
    )
