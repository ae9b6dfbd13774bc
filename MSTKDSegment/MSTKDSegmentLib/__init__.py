"""Qt-free glue between a Slicer scene and the `mstkd` engine.

Everything here takes the MRML scene and the module logics as arguments, so that it runs inside
Slicer (the widget passes `slicer.mrmlScene` and `slicer.modules.*.logic()`) and in tests against
the scene of `trame_slicer.core.SlicerApp()`. Nothing here imports qt, ctk or torch.
"""

from __future__ import annotations

from MSTKDSegmentLib.engine import ensure_engine_importable

ensure_engine_importable()

from mstkd.conventions import (  # noqa: E402
    BRAIN_EXTRACTION_CHOICES,
    DEFAULT_BRAIN_EXTRACTION,
    DEFAULT_DEVICE,
    DEVICE_CHOICES,
    DISPLAY_NAMES,
    SEQUENCES,
    TORCH_VERSION_FLOOR,
    SequenceMap,
    sequence_map,
)
from mstkd.errors import MSTKDError  # noqa: E402
from mstkd.preprocess.reference import choose_reference  # noqa: E402
from mstkd.resources import DEFAULT_MODEL  # noqa: E402
from MSTKDSegmentLib.dependencies import (  # noqa: E402
    PHANTOM_REQUIREMENTS,
    SEGMENT_REQUIREMENTS,
    missing_requirements,
)
from MSTKDSegmentLib.dicom_study import database_series, is_inside, load_dicom_study  # noqa: E402
from MSTKDSegmentLib.logic import SegmentationLogic, SegmentationRequest, SegmentationRun  # noqa: E402
from MSTKDSegmentLib.marks import BRAIN_SEGMENT, RELIABILITY_TAG, UNRELIABLE_SUFFIX  # noqa: E402
from MSTKDSegmentLib.models import ModelChoice, model_choices  # noqa: E402
from MSTKDSegmentLib.process import EngineProcess, Progress, format_duration  # noqa: E402
from MSTKDSegmentLib.results import (  # noqa: E402
    ALL_SEGMENTS,
    NESTED_SEGMENTS,
    SUBREGION_SEGMENTS,
    SegmentSpec,
    read_volumes_table,
    terminology_tag,
)
from MSTKDSegmentLib.sequences import assign_sequences, duplicate_inputs, guess_node_sequence  # noqa: E402
from MSTKDSegmentLib.volumes import SYNTHETIC_SHAPE, is_dicom_folder, load_case_folder, load_phantom  # noqa: E402

__all__ = [
    "ALL_SEGMENTS",
    "BRAIN_EXTRACTION_CHOICES",
    "BRAIN_SEGMENT",
    "DEFAULT_BRAIN_EXTRACTION",
    "RELIABILITY_TAG",
    "UNRELIABLE_SUFFIX",
    "DEFAULT_DEVICE",
    "DEFAULT_MODEL",
    "DEVICE_CHOICES",
    "DISPLAY_NAMES",
    "PHANTOM_REQUIREMENTS",
    "SEGMENT_REQUIREMENTS",
    "SEQUENCES",
    "SYNTHETIC_SHAPE",
    "TORCH_VERSION_FLOOR",
    "MSTKDError",
    "NESTED_SEGMENTS",
    "SUBREGION_SEGMENTS",
    "EngineProcess",
    "ModelChoice",
    "Progress",
    "SegmentSpec",
    "SegmentationLogic",
    "SegmentationRequest",
    "SegmentationRun",
    "SequenceMap",
    "assign_sequences",
    "choose_reference",
    "database_series",
    "is_inside",
    "load_dicom_study",
    "duplicate_inputs",
    "format_duration",
    "guess_node_sequence",
    "is_dicom_folder",
    "load_case_folder",
    "load_phantom",
    "missing_requirements",
    "read_volumes_table",
    "model_choices",
    "sequence_map",
    "terminology_tag",
]
