"""Brain extraction before normalisation: whether an exam needs it, which tool runs, on which sequence.

`--brain-extraction` (conventions.BRAIN_EXTRACTION_CHOICES):
- `none`: the images are used as they are;
- `auto`: nothing runs when every sequence is already skull-stripped (the rule of
  mstkd.preprocess.stripped); otherwise the first installed tool of EXTRACTORS that handles a
  sequence of the exam runs, and when none does, the error names what to install;
- `deepbet`, `hd-bet`: that tool runs, whatever the images look like.

A tool runs on one sequence (the first of its own preference the exam has); prepare_exam carries
its mask to the other sequences through the co-registration. Which tools are installed is looked
up without importing them; the one that runs is imported then (mstkd.preprocess.extractors).
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from mstkd.conventions import BRAIN_EXTRACTION_CHOICES, DISPLAY_NAMES, SequenceMap
from mstkd.errors import MSTKDError
from mstkd.preprocess.stripped import Support, measure_support

NO_EXTRACTION = "none"
AUTOMATIC = "auto"


@dataclass(frozen=True)
class Extractor:
    """A brain-extraction tool: its name, what it imports as and installs as, the sequences it handles."""

    name: str
    module: str
    requirement: str
    sequences: Tuple[str, ...]  # preferred first
    about: str


# `auto` tries them in this order: HD-BET was trained on multi-sequence MRI of brain-tumour
# patients, deepbet on T1-weighted MRI of healthy adults.
EXTRACTORS: Tuple[Extractor, ...] = (
    Extractor(
        "hd-bet",
        "HD_BET",
        "hd-bet",
        ("t1", "t1ce", "t2", "flair"),
        "any of T1, T1Gd, T2, FLAIR; downloads its weights on first use",
    ),
    Extractor("deepbet", "deepbet", "deepbet", ("t1", "t1ce"), "T1 or T1Gd; weights included"),
)

# Runs an extractor on one image and returns its brain mask on the image's grid.
RunExtractor = Callable[[Extractor, sitk.Image], sitk.Image]


@dataclass(frozen=True)
class BrainExtraction:
    """What was done about the skull: the tool (or 'none'), why, and its mask on the grid of `sequence`."""

    method: str
    reason: str
    sequence: Optional[str] = None
    mask: Optional[sitk.Image] = None
    seconds: float = 0.0
    supports: Tuple[Support, ...] = ()

    def describe(self) -> str:
        """One line for the preparation's account of what was done."""
        if self.mask is None:
            return f"brain extraction: none ({self.reason})"
        return (
            f"brain extraction: {self.method} on {DISPLAY_NAMES[self.sequence]} ({self.seconds:.1f} s, "
            f"brain {brain_volume_ml(self.mask):.0f} mL): {self.reason}"
        )

    def summary(self) -> Dict[str, Any]:
        """The summary JSON's account: method, sequence, seconds, why, and each sequence's support."""
        return {
            "method": self.method,
            "sequence": self.sequence,
            "seconds": round(self.seconds, 3),
            "brain_ml": None if self.mask is None else round(brain_volume_ml(self.mask), 1),
            "reason": self.reason,
            "support_ml": {s.sequence: round(s.support_ml, 1) for s in self.supports},
        }


def describe_summary(summary: Mapping[str, Any]) -> str:
    """A BrainExtraction.summary() in a few words: 'deepbet on T1, 7.2 s (brain 1480 mL)' or 'none (...)'."""
    if not summary.get("sequence"):
        return f"none ({str(summary.get('reason', '')).split(':')[0]})"
    return (
        f"{summary.get('method')} on {DISPLAY_NAMES.get(summary['sequence'], summary['sequence'])}, "
        f"{float(summary.get('seconds') or 0.0):.1f} s (brain {float(summary.get('brain_ml') or 0.0):.0f} mL)"
    )


def is_installed(extractor: Extractor) -> bool:
    """True when the tool can be imported (looked up, not imported)."""
    return importlib.util.find_spec(extractor.module) is not None


def check_choice(choice: str) -> str:
    """A valid --brain-extraction value (case-insensitive), or MSTKDError naming them."""
    chosen = str(choice).strip().lower()
    if chosen not in BRAIN_EXTRACTION_CHOICES:
        raise MSTKDError(
            f"Unknown brain extraction '{choice}'; choose one of {', '.join(BRAIN_EXTRACTION_CHOICES)}."
        )
    return chosen


def extractor_named(name: str) -> Extractor:
    """The extractor of that name."""
    return next(e for e in EXTRACTORS if e.name == name)


def choose_extractor(
    choice: str, present: SequenceMap[Any], installed: Callable[[Extractor], bool] = is_installed
) -> Tuple[Extractor, str]:
    """(tool, sequence it runs on) for `choice` ('auto' or a tool's name); MSTKDError when none can run."""
    candidates = EXTRACTORS if choice == AUTOMATIC else (extractor_named(choice),)
    usable = [e for e in candidates if installed(e)]
    for extractor in usable:
        sequence = next((s for s in extractor.sequences if s in present), None)
        if sequence is not None:
            return extractor, sequence
    given = ", ".join(DISPLAY_NAMES[s] for s in present)
    if choice != AUTOMATIC and not usable:
        tool = candidates[0]
        raise MSTKDError(
            f"Brain extraction with {tool.name} was asked for, but it is not installed: "
            f"pip install {tool.requirement} ({tool.about})."
        )
    if choice != AUTOMATIC:
        tool = candidates[0]
        raise MSTKDError(
            f"{tool.name} extracts the brain from {_sequence_list(tool.sequences)} only, and this exam has "
            f"{given}: add one of those, or use another tool (--brain-extraction auto)."
        )
    # Only the tools that would handle a sequence of this exam are worth installing.
    helpful = [e for e in EXTRACTORS if e not in usable and any(s in present for s in e.sequences)]
    offers = "; ".join(f"pip install {e.requirement} ({e.about})" for e in helpful)
    if not usable:
        raise MSTKDError(
            "This exam is not skull-stripped and no brain-extraction tool is installed: "
            f"{offers}; or give skull-stripped images (--brain-extraction none uses the images as they are)."
        )
    names = " and ".join(e.name for e in usable)
    handled = sorted({s for e in usable for s in e.sequences}, key=list(DISPLAY_NAMES).index)
    raise MSTKDError(
        f"This exam is not skull-stripped and has only {given}; the installed {names} extracts the brain "
        f"from {_sequence_list(handled)} only. Add such a sequence, or {offers}, or give skull-stripped "
        "images."
    )


def extract_brain(
    images: SequenceMap[sitk.Image],
    choice: str,
    run: RunExtractor,
    installed: Callable[[Extractor], bool] = is_installed,
) -> BrainExtraction:
    """Decide on and run brain extraction for an exam's images (see the module's docstring)."""
    choice = check_choice(choice)
    if choice == NO_EXTRACTION:
        return BrainExtraction(NO_EXTRACTION, "--brain-extraction none: the images are used as they are")
    supports = tuple(measure_support(s, image) for s, image in images.items())
    unstripped = [s for s in supports if not s.stripped]
    if choice == AUTOMATIC and not unstripped:
        return BrainExtraction(
            NO_EXTRACTION,
            "already skull-stripped: " + "; ".join(s.describe() for s in supports),
            supports=supports,
        )
    extractor, sequence = choose_extractor(choice, images, installed)
    reason = (
        "; ".join(s.describe() for s in unstripped) if choice == AUTOMATIC else f"--brain-extraction {choice}"
    )
    started = time.perf_counter()
    mask = run(extractor, images[sequence])
    seconds = time.perf_counter() - started
    if not np.any(sitk.GetArrayViewFromImage(mask)):
        raise MSTKDError(
            f"{extractor.name} found no brain in the {DISPLAY_NAMES[sequence]}; check that it shows a head, "
            "or give skull-stripped images (--brain-extraction none)."
        )
    return BrainExtraction(extractor.name, reason, sequence, mask, seconds, supports)


def brain_volume_ml(mask: sitk.Image) -> float:
    """The volume of a mask's non-zero voxels in millilitres."""
    voxel_ml = float(np.prod(mask.GetSpacing())) / 1000.0
    return float(np.count_nonzero(sitk.GetArrayViewFromImage(mask))) * voxel_ml


def _sequence_list(sequences: Tuple[str, ...]) -> str:
    names: List[str] = [DISPLAY_NAMES[s] for s in sequences]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
