"""Qt-free glue between a Slicer scene and the `mstkd` engine.

Everything here takes the MRML scene and the module logics (and Slicer's other collaborators: the
DICOM database, pip, the user's answers) as arguments, so that it runs inside Slicer (the widget
passes `slicer.mrmlScene`, `slicer.modules.*.logic()`, ...) and in tests against the scene of
`trame_slicer.core.SlicerApp()`. Nothing here imports qt, ctk or torch.
"""

from __future__ import annotations

from MSTKDSegmentLib.engine import ensure_engine_importable

ensure_engine_importable()

from mstkd.conventions import (  # noqa: E402
    BRAIN_EXTRACTION_CHOICES,
    DEFAULT_BRAIN_EXTRACTION,
    DEFAULT_DEVICE,
    SEQUENCES,
    SequenceMap,
)
from mstkd.errors import MSTKDError  # noqa: E402
from mstkd.imageio import is_dicom_folder  # noqa: E402
from mstkd.resources import DEFAULT_MODEL  # noqa: E402
from MSTKDSegmentLib.dependencies import DependencyInstaller, requirements_for, unmet  # noqa: E402
from MSTKDSegmentLib.dicom import DicomLoader, is_inside, series_descriptions  # noqa: E402
from MSTKDSegmentLib.engine import child_environment, serve_command  # noqa: E402
from MSTKDSegmentLib.logic import SegmentationLogic, SegmentationRequest, SegmentationRun  # noqa: E402
from MSTKDSegmentLib.marks import BRAIN_SEGMENT, RELIABILITY_TAG, UNRELIABLE_SUFFIX  # noqa: E402
from MSTKDSegmentLib.models import ModelChoice, model_choices  # noqa: E402
from MSTKDSegmentLib.notes import Note, format_notes, read_notes  # noqa: E402
from MSTKDSegmentLib.panel import MODEL_FILE, PanelSettings, PanelState  # noqa: E402
from MSTKDSegmentLib.process import Progress, format_duration  # noqa: E402
from MSTKDSegmentLib.render import PanelRenderer  # noqa: E402
from MSTKDSegmentLib.results import (  # noqa: E402
    ALL_SEGMENTS,
    NESTED_SEGMENTS,
    SUBREGION_SEGMENTS,
    SegmentSpec,
    read_volumes_table,
    terminology_tag,
)
from MSTKDSegmentLib.sample import SAMPLE_EXTENSION, SAMPLE_FILE_TYPE, read_sample, sample_uri  # noqa: E402
from MSTKDSegmentLib.sequences import (  # noqa: E402
    assign_sequences,
    duplicate_inputs,
    guess_node_sequence,
    is_mri_volume,
)
from MSTKDSegmentLib.service import EngineService  # noqa: E402
from MSTKDSegmentLib.volumes import SYNTHETIC_SHAPE, load_case_folder, load_phantom  # noqa: E402

__all__ = [
    "ALL_SEGMENTS",
    "BRAIN_EXTRACTION_CHOICES",
    "BRAIN_SEGMENT",
    "DEFAULT_BRAIN_EXTRACTION",
    "DEFAULT_DEVICE",
    "DEFAULT_MODEL",
    "MODEL_FILE",
    "NESTED_SEGMENTS",
    "SAMPLE_EXTENSION",
    "SAMPLE_FILE_TYPE",
    "SEQUENCES",
    "SUBREGION_SEGMENTS",
    "SYNTHETIC_SHAPE",
    "DependencyInstaller",
    "DicomLoader",
    "EngineService",
    "MSTKDError",
    "ModelChoice",
    "Note",
    "PanelRenderer",
    "PanelSettings",
    "PanelState",
    "RELIABILITY_TAG",
    "Progress",
    "SegmentSpec",
    "SegmentationLogic",
    "SegmentationRequest",
    "SegmentationRun",
    "SequenceMap",
    "UNRELIABLE_SUFFIX",
    "assign_sequences",
    "child_environment",
    "duplicate_inputs",
    "format_duration",
    "format_notes",
    "guess_node_sequence",
    "is_dicom_folder",
    "is_inside",
    "is_mri_volume",
    "load_case_folder",
    "load_phantom",
    "model_choices",
    "read_notes",
    "read_sample",
    "read_volumes_table",
    "requirements_for",
    "sample_uri",
    "series_descriptions",
    "serve_command",
    "terminology_tag",
    "unmet",
]
