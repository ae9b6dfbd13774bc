"""Which tumour regions the given sequences can support, from a model's own per-subset validation.

A model file may carry, in its metadata under VALIDATION_KEY, the mean Dice of every region from
every subset of sequences on held-out cases (the model card's table; `mstkd evaluate-model
--model-out` writes it):

    {"validation": {"convention": "brats-legacy", "cases": 4, "split": "...",
                    "dice": {"flair,t2": {"WT": 0.83, "TC": 0.49, "ET": 0.29}, ...}}}

A region is reliable from a subset when that Dice is at least RELIABLE_DICE; below, it is shown
but marked unreliable. A model without a table for the subset gets the generic rule: enhancing
tumour needs T1Gd, the only sequence on which contrast uptake shows; WT and TC are not assessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

from mstkd.conventions import DISPLAY_NAMES, REGIONS, Subset

VALIDATION_KEY = "validation"
# Below this Dice, the wrongly labelled voxels of a region outnumber twice the rightly labelled ones.
RELIABLE_DICE = 0.5
UNRELIABLE = "shown, but unreliable"
# Each disjoint sub-region belongs to the smallest region holding it: its segment is as
# reliable as that region.
SUBREGION_REGION: Dict[str, str] = {"ncr": "TC", "ed": "WT", "et": "ET"}


@dataclass(frozen=True)
class RegionTrust:
    """Whether one region can be trusted from the given sequences, the Dice behind it, and why."""

    region: str
    reliable: bool
    reason: str
    dice: Optional[float] = None


@dataclass(frozen=True)
class Trust:
    """Per-region trust for one subset of sequences, and where it comes from."""

    subset: Subset
    source: str
    regions: Dict[str, RegionTrust]

    @property
    def unreliable(self) -> Tuple[str, ...]:
        """The regions shown but not to be trusted, in report order."""
        return tuple(r for r, trust in self.regions.items() if not trust.reliable)

    def warnings(self) -> List[str]:
        """A line per unreliable region: 'ET from FLAIR+T2: validation Dice 0.29 - shown, but unreliable'."""
        return [self.regions[r].reason for r in self.unreliable]

    def summary(self) -> Dict[str, Any]:
        """The summary JSON's account (the Slicer module reads it)."""
        return {
            "source": self.source,
            "reliable_dice": RELIABLE_DICE,
            "regions": {
                region: {"reliable": trust.reliable, "dice": trust.dice, "reason": trust.reason}
                for region, trust in self.regions.items()
            },
            "unreliable": list(self.unreliable),
            "warnings": self.warnings(),
        }


def assess_trust(subset: Subset, validation: Optional[Mapping[str, Any]] = None) -> Trust:
    """The trust of each region from `subset`, by the model's validation table when it covers the subset."""
    table = (validation or {}).get("dice", {})
    scores = table.get(subset.key) if isinstance(table, Mapping) else None
    if isinstance(scores, Mapping) and all(region in scores for region in REGIONS):
        source = (
            f"the model's validation table ({validation.get('convention', 'Dice')}, "
            f"{validation.get('cases', '?')} held-out cases)"
        )
        return Trust(subset, source, {r: _measured(subset, r, float(scores[r])) for r in REGIONS})
    why = "has no validation table" if not table else f"has no validation of {subset.name}"
    return Trust(subset, f"the generic rule (the model file {why})", _generic(subset))


def _measured(subset: Subset, region: str, dice: float) -> RegionTrust:
    reliable = dice >= RELIABLE_DICE
    reason = f"{region} from {subset.name}: validation Dice {dice:.2f}"
    return RegionTrust(region, reliable, reason if reliable else f"{reason} - {UNRELIABLE}", dice)


def _generic(subset: Subset) -> Dict[str, RegionTrust]:
    trust = {
        region: RegionTrust(region, True, f"{region} from {subset.name}: not assessed (no validation table)")
        for region in REGIONS
    }
    if "t1ce" not in subset:
        trust["ET"] = RegionTrust(
            "ET",
            False,
            f"ET from {subset.name}: enhancement shows only on {DISPLAY_NAMES['t1ce']} - {UNRELIABLE}",
        )
    return trust
