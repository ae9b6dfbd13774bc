"""What the engine says about a result, put where a radiologist sees it: unreliable regions and the brain.

Segments of regions the given sequences cannot support (the summary's `trust`, from the model's
per-subset validation or the generic rule) get UNRELIABLE_SUFFIX on their name and the reason as
their description tag; a later run from better sequences takes the mark off again. The brain mask
the engine used (written with --brain-mask) becomes a segment of its own, drawn as an outline.
"""

from __future__ import annotations

from typing import Any, List, Mapping

import numpy as np

from mstkd.conventions import BRAIN_MASK_COLOUR, REGIONS
from mstkd.trust import SUBREGION_REGION
from MSTKDSegmentLib.results import (
    ALL_SEGMENTS,
    ANATOMIC_CONTEXT,
    ATTRIBUTE_PREFIX,
    BRAIN,
    CATEGORY_CONTEXT,
    NONE_CODE,
    SegmentSpec,
    import_labelmap,
)

UNRELIABLE_SUFFIX = " (unreliable)"
# The segment tag that holds why a region can or cannot be trusted (Segment Editor shows tags).
RELIABILITY_TAG = "MSTKD.Reliability"
ANATOMICAL_STRUCTURE = ("SCT", "123037004", "Anatomical Structure")
BRAIN_SEGMENT = SegmentSpec("BRAIN", "MSTKD_BRAIN", "Brain mask", BRAIN, BRAIN_MASK_COLOUR)


def region_of(spec: SegmentSpec) -> str:
    """The evaluated region a segment stands for: itself for WT, TC, ET; NCR counts as TC, ED as WT."""
    return spec.key if spec.key in REGIONS else SUBREGION_REGION[spec.key.lower()]


def mark_trust(segmentation_node, trust: Mapping[str, Any]) -> List[str]:
    """Mark (or unmark) this module's segments by the summary's trust; returns the warnings."""
    regions = trust.get("regions") if isinstance(trust, Mapping) else None
    regions = regions if isinstance(regions, Mapping) else {}
    segmentation = segmentation_node.GetSegmentation()
    for spec in ALL_SEGMENTS:
        segment = segmentation.GetSegment(spec.segment_id)
        if segment is None:
            continue
        entry = regions.get(region_of(spec))
        entry = entry if isinstance(entry, Mapping) else {}
        name = segment.GetName()
        if name.endswith(UNRELIABLE_SUFFIX):
            name = name[: -len(UNRELIABLE_SUFFIX)]
        reliable = entry.get("reliable", True) is not False
        segment.SetName(name if reliable else name + UNRELIABLE_SUFFIX)
        segment.SetTag(RELIABILITY_TAG, str(entry.get("reason", "")))
    warnings = [str(w) for w in (trust.get("warnings") or [])] if isinstance(trust, Mapping) else []
    segmentation_node.SetAttribute(ATTRIBUTE_PREFIX + "Unreliable", "; ".join(warnings))
    return warnings


def import_brain_mask(segmentation_node, mask: np.ndarray, ijk_to_ras) -> None:
    """Write a (k, j, i) brain mask into the brain segment (created once, as an outline)."""
    segmentation = segmentation_node.GetSegmentation()
    if segmentation.GetSegment(BRAIN_SEGMENT.segment_id) is None:
        segmentation.AddEmptySegment(BRAIN_SEGMENT.segment_id, BRAIN_SEGMENT.name, BRAIN_SEGMENT.colour)
        segment = segmentation.GetSegment(BRAIN_SEGMENT.segment_id)
        segment.SetTag(segment.GetTerminologyEntryTagName(), brain_terminology_tag())
        display = segmentation_node.GetDisplayNode()
        if display is not None:
            display.SetSegmentVisibility2DFill(BRAIN_SEGMENT.segment_id, False)
            display.SetSegmentVisibility3D(BRAIN_SEGMENT.segment_id, False)
    import_labelmap(segmentation_node, (mask > 0).astype(np.uint8), ijk_to_ras, (BRAIN_SEGMENT,))


def remove_brain_mask(segmentation_node) -> None:
    """Drop the brain segment of an earlier run (a run without the mask leaves none behind)."""
    segmentation = segmentation_node.GetSegmentation()
    if segmentation.GetSegment(BRAIN_SEGMENT.segment_id) is not None:
        segmentation.RemoveSegment(BRAIN_SEGMENT.segment_id)


def brain_terminology_tag() -> str:
    """The brain segment's terminology: the anatomical structure 'Brain' (no region beyond itself)."""
    category, kind, none = ("^".join(code) for code in (ANATOMICAL_STRUCTURE, BRAIN, NONE_CODE))
    return "~".join((CATEGORY_CONTEXT, category, kind, none, ANATOMIC_CONTEXT, none, none))
