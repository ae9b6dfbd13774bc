"""What a segmentation produced: the label map on the reference grid, its volumes, and its provenance.

Kept apart from the Predictor (and from PyTorch) so that writing a result and reading its summary
need no model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import SimpleITK as sitk

# The "written_by" of a summary: how a later run knows the file as its own (and may replace it).
SUMMARY_WRITER = "mstkd segment"


@dataclass
class SegmentationResult:
    """A label map on the reference grid, its region volumes, and what produced it."""

    labels: sitk.Image
    label_convention: str
    volumes_ml: Dict[str, float]
    sequences: Tuple[str, ...]
    reference: str
    model_name: str
    model_path: Path
    model_sha256: str
    device: str
    timings_s: Dict[str, float]
    steps: List[str]
    fallbacks: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    # What a reader of the result should know, each {"kind": ..., "text": ...}: registrations, fallbacks.
    notes: List[Dict[str, str]] = field(default_factory=list)
    brain_extraction: Optional[Dict[str, Any]] = None
    brain_mask: Optional[sitk.Image] = None
    trust: Optional[Dict[str, Any]] = None

    def summary(self, output: Optional[Union[str, Path]] = None) -> Dict[str, Any]:
        """The JSON summary `mstkd segment --summary` writes (and the Slicer module reads)."""
        return {
            "written_by": SUMMARY_WRITER,
            "output": None if output is None else os.path.abspath(output),
            "reference": self.reference,
            "sequences": list(self.sequences),
            "model": {
                "name": self.model_name,
                "path": os.path.abspath(self.model_path),
                "sha256": self.model_sha256,
            },
            "device": self.device,
            "labels": self.label_convention,
            "volumes_ml": {key: round(value, 4) for key, value in self.volumes_ml.items()},
            "timings_s": {key: round(value, 3) for key, value in self.timings_s.items()},
            "brain_extraction": self.brain_extraction,
            "trust": self.trust,
            "steps": list(self.steps),
            "warnings": list(self.warnings),
            "notes": [dict(note) for note in self.notes],
        }
