"""Preprocessing of a clinical exam for the model, with an exact way back to the reference volume.

preflight -> choose_reference -> brain extraction when asked -> rigid co-registration (only where
grids differ) -> the model grid (identity direction, model spacing) -> the extracted brain only ->
z-score from the present sequences; labels_to_reference undoes the grid change with
nearest-neighbour resampling onto the reference's own grid.
"""

from __future__ import annotations

from mstkd.preprocess.exam import (
    PreparedExam,
    brain_mask_on_reference,
    labels_to_model,
    labels_to_reference,
    prepare_exam,
)
from mstkd.preprocess.preflight import preflight
from mstkd.preprocess.reference import REFERENCE_PREFERENCE, choose_reference

__all__ = [
    "REFERENCE_PREFERENCE",
    "PreparedExam",
    "brain_mask_on_reference",
    "choose_reference",
    "labels_to_model",
    "labels_to_reference",
    "preflight",
    "prepare_exam",
]
