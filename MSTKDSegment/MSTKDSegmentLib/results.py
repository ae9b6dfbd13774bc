"""The engine's label map into a segmentation node: stable segment IDs, SNOMED terminology, colours,
reference geometry, nested regions, a table of region volumes, provenance attributes.

Segment IDs are fixed (MSTKD_NCR, ...), so a re-run replaces those segments and leaves every
other segment of the node alone. Name, colour and terminology are set when a segment is created
only: a user's later changes to them survive re-runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import slicer
from vtkmodules.util import numpy_support
from vtkmodules.vtkCommonCore import vtkDoubleArray, vtkStringArray
from vtkmodules.vtkCommonMath import vtkMatrix4x4

from mstkd.conventions import (
    REGION_COLOURS,
    REGION_NAMES,
    REGIONS,
    SUBREGION_COLOURS,
    SUBREGION_NAMES,
    SUBREGIONS,
    label_convention,
)
from mstkd.errors import MSTKDError
from mstkd.imageio import read_image
from mstkd.inference.volumes import VOLUME_KEYS

CATEGORY_CONTEXT = "Segmentation category and type - DICOM master list"
ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"
MORPHOLOGICALLY_ALTERED = ("SCT", "49755003", "Morphologically Altered Structure")
BRAIN = ("SCT", "12738006", "Brain")
NONE_CODE = ("", "", "")

Code = Tuple[str, str, str]
Colour = Tuple[float, float, float]

VOLUMES_TABLE_ROLE = "MSTKDVolumesTable"
# Rounding of the summary's volumes (4 decimals) and of float sums.
VOLUME_TOLERANCE_ML = 1e-3
ATTRIBUTE_PREFIX = "MSTKD."

# Each region its own type, so that the terminology selector and DICOM SEG tell them apart: the
# brain-lesion segmentation types of DICOM (CID 7168/7169) for the sub-regions, and SNOMED's
# neoplasm concepts for the nested regions.
TYPE_CODES: Dict[str, Code] = {
    "NCR": ("SCT", "6574001", "Necrosis"),
    "ED": ("SCT", "79654002", "Edema"),
    "ET": ("NCIt", "C113842", "Enhancing Lesion"),
    "WT": ("SCT", "108369006", "Neoplasm"),
    "TC": ("SCT", "86049000", "Neoplasm, Primary"),
}


@dataclass(frozen=True)
class SegmentSpec:
    """One segment this module writes: its fixed ID, name, SNOMED type and colour."""

    key: str
    segment_id: str
    name: str
    type_code: Code
    colour: Colour
    nested: bool = False


def _spec(key: str, name: str, colour: Colour, nested: bool = False) -> SegmentSpec:
    return SegmentSpec(key, f"MSTKD_{key}", f"{name} ({key})", TYPE_CODES[key], colour, nested)


# Names and colours are the engine's (mstkd.conventions).
SUBREGION_SEGMENTS: Tuple[SegmentSpec, ...] = tuple(
    _spec(s.upper(), SUBREGION_NAMES[s], SUBREGION_COLOURS[s]) for s in SUBREGIONS
)
# The enhancing-tumour region is the ET segment itself, so only WT and TC are added.
NESTED_SEGMENTS: Tuple[SegmentSpec, ...] = tuple(
    _spec(region, REGION_NAMES[region], REGION_COLOURS[region], nested=True) for region in ("WT", "TC")
)
ALL_SEGMENTS = SUBREGION_SEGMENTS + NESTED_SEGMENTS


def _coded(code: Code) -> str:
    return "^".join(code)


def terminology_tag(spec: SegmentSpec) -> str:
    """The segment's terminology entry as Slicer serialises it (seven '~'-separated parts)."""
    return "~".join(
        (
            CATEGORY_CONTEXT,
            _coded(MORPHOLOGICALLY_ALTERED),
            _coded(spec.type_code),
            _coded(NONE_CODE),
            ANATOMIC_CONTEXT,
            _coded(BRAIN),
            _coded(NONE_CODE),
        )
    )


def set_terminology(segment, spec: SegmentSpec) -> None:
    """Tag a segment with its terminology (the tag works on every Slicer 5 version)."""
    segment.SetTag(segment.GetTerminologyEntryTagName(), terminology_tag(spec))


def read_summary(path: Path, labels: str) -> Dict[str, object]:
    """The engine's JSON summary of a run; a missing, unreadable or inconsistent one raises."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise MSTKDError(
            f"The engine's summary of the segmentation cannot be read ({error}); the result was not imported."
        ) from None
    if not isinstance(data, dict):
        raise MSTKDError("The engine's summary is not a JSON object; the result was not imported.")
    if data.get("labels") != labels:
        raise MSTKDError(
            f"The engine wrote labels in the {data.get('labels')!r} convention, not the {labels!r} asked "
            "for; the result was not imported."
        )
    return data


def check_result_file(path: Path) -> None:
    """Refuse a label map the engine left damaged or truncated (read byte for byte by mstkd)."""
    image = read_image(path)
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise MSTKDError(
            f"The engine wrote a {image.GetDimension()}D image with {image.GetNumberOfComponentsPerPixel()} "
            "value(s) per voxel instead of a 3D label map; the result was not imported."
        )


def check_summary_volumes(summary: Mapping[str, object], volumes: Mapping[str, float]) -> None:
    """Refuse a summary whose region volumes disagree with the label map it describes."""
    reported = volumes_from_summary(summary)
    if reported is None:
        return
    for key, value in volumes.items():
        if abs(reported.get(key, value) - value) > VOLUME_TOLERANCE_ML + 1e-3 * value:
            raise MSTKDError(
                f"The engine's summary gives {key} {reported[key]:.2f} mL but its label map holds "
                f"{value:.2f} mL; the result was not imported."
            )


def read_label_map(path) -> slicer.vtkMRMLLabelMapVolumeNode:
    """A label-map node, outside any scene, read from a file through Slicer's storage node (LPS -> RAS)."""
    node = slicer.vtkMRMLLabelMapVolumeNode()
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    if not storage.ReadData(node) or node.GetImageData() is None:
        raise MSTKDError(f"Could not read the segmentation the engine wrote ({path}).")
    return node


def label_array(node) -> np.ndarray:
    """A node's voxels as a (k, j, i) array (a copy)."""
    image = node.GetImageData()
    dims = image.GetDimensions()
    flat = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    return flat.reshape(dims[2], dims[1], dims[0]).copy()


def same_matrix(a: vtkMatrix4x4, b: vtkMatrix4x4, tolerance_mm: float = 1e-3) -> bool:
    """True when two 4x4 matrices agree within a tolerance."""
    return all(
        abs(a.GetElement(r, c) - b.GetElement(r, c)) <= tolerance_mm for r in range(4) for c in range(4)
    )


def _oriented_image(labels: np.ndarray, ijk_to_ras: vtkMatrix4x4):
    """A (k, j, i) uint8 array as an oriented image on a given grid."""
    image = slicer.vtkOrientedImageData()
    image.SetDimensions(labels.shape[2], labels.shape[1], labels.shape[0])
    scalars = numpy_support.numpy_to_vtk(np.ascontiguousarray(labels, dtype=np.uint8).ravel(), deep=True)
    image.GetPointData().SetScalars(scalars)
    image.SetGeometryFromImageToWorldMatrix(ijk_to_ras)
    return image


def import_segments(
    segmentation_node,
    labels: np.ndarray,
    convention: str,
    ijk_to_ras: vtkMatrix4x4,
    nested: bool,
) -> None:
    """Write the label map's sub-regions (and WT/TC when `nested`) into their fixed segments.

    `ijk_to_ras` is the label map's grid in the segmentation node's coordinates.
    """
    values = label_convention(convention).values
    segmentation = segmentation_node.GetSegmentation()
    wanted = SUBREGION_SEGMENTS + (NESTED_SEGMENTS if nested else ())
    for spec in wanted:
        if segmentation.GetSegment(spec.segment_id) is None:
            _add_segment(segmentation_node, spec)
    if not nested:
        for spec in NESTED_SEGMENTS:
            if segmentation.GetSegment(spec.segment_id) is not None:
                segmentation.RemoveSegment(spec.segment_id)
    # Sub-region k of SUBREGION_SEGMENTS becomes label k + 1, the k-th ID of the import.
    disjoint = np.zeros(labels.shape, dtype=np.uint8)
    for index, spec in enumerate(SUBREGION_SEGMENTS, start=1):
        disjoint[labels == values[spec.key.lower()]] = index
    import_labelmap(segmentation_node, disjoint, ijk_to_ras, SUBREGION_SEGMENTS)
    if nested:
        for spec in NESTED_SEGMENTS:
            members = [values[s] for s in REGIONS[spec.key]]
            import_labelmap(segmentation_node, np.isin(labels, members).astype(np.uint8), ijk_to_ras, (spec,))


def _add_segment(segmentation_node, spec: SegmentSpec) -> None:
    """Create one of this module's segments, with its name, colour and terminology."""
    segmentation = segmentation_node.GetSegmentation()
    segmentation.AddEmptySegment(spec.segment_id, spec.name, spec.colour)
    set_terminology(segmentation.GetSegment(spec.segment_id), spec)
    display = segmentation_node.GetDisplayNode()
    if spec.nested and display is not None:
        # Regions contain the sub-regions: outline them, so that they do not hide them.
        display.SetSegmentVisibility2DFill(spec.segment_id, False)
        display.SetSegmentVisibility3D(spec.segment_id, False)


def import_labelmap(
    segmentation_node, labels: np.ndarray, ijk_to_ras: vtkMatrix4x4, specs: Sequence[SegmentSpec]
) -> None:
    """Import a (k, j, i) label map on a grid into the segments of `specs` (label k -> the k-th)."""
    ids = vtkStringArray()
    for spec in specs:
        ids.InsertNextValue(spec.segment_id)
    # The image overload takes the grid in the segmentation node's own coordinates and applies no
    # transform (the label-map-node overload of some versions applies a parent transform twice).
    image = _oriented_image(labels, ijk_to_ras)
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    if not logic.ImportLabelmapToSegmentationNode(image, segmentation_node, ids):
        raise MSTKDError("Slicer could not import the segmentation result; see the application log.")


def set_reference_geometry(segmentation_node, reference_node) -> None:
    """Make the reference volume the segmentation's geometry (and its DICOM SEG reference)."""
    segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(reference_node)
    segmentation_node.SetNodeReferenceID(
        segmentation_node.GetReferenceImageGeometryReferenceRole(), reference_node.GetID()
    )


def store_provenance(
    segmentation_node, summary: Mapping[str, object], sequences: Sequence[str], reference: str
) -> None:
    """Record model, checksum, sequences and device on the segmentation node's attributes."""
    model = summary.get("model") if isinstance(summary.get("model"), dict) else {}
    attributes = {
        "ModelName": model.get("name", ""),
        "ModelSHA256": model.get("sha256", ""),
        "ModelPath": model.get("path", ""),
        "Sequences": ",".join(summary.get("sequences") or sequences),
        "Reference": summary.get("reference") or reference,
        "Device": summary.get("device", ""),
        "Labels": summary.get("labels", ""),
        "Warnings": " | ".join(str(w) for w in summary.get("warnings") or []),
    }
    for name, value in attributes.items():
        segmentation_node.SetAttribute(ATTRIBUTE_PREFIX + name, str(value or ""))


def update_volumes_table(scene, segmentation_node, volumes_ml: Mapping[str, float]):
    """Create or refresh the table of region volumes that belongs to the segmentation node."""
    table_node = segmentation_node.GetNodeReference(VOLUMES_TABLE_ROLE)
    if table_node is None:
        table_node = scene.AddNewNodeByClass(
            "vtkMRMLTableNode", scene.GenerateUniqueName(f"{segmentation_node.GetName()} volumes")
        )
        segmentation_node.SetNodeReferenceID(VOLUMES_TABLE_ROLE, table_node.GetID())
    names = {spec.key: spec.name for spec in ALL_SEGMENTS}
    regions = vtkStringArray()
    regions.SetName("Region")
    volumes = vtkDoubleArray()
    volumes.SetName("Volume")
    for key in VOLUME_KEYS:
        regions.InsertNextValue(names[key])
        volumes.InsertNextValue(round(float(volumes_ml.get(key, 0.0)), 2))
    table = table_node.GetTable()
    table_node.RemoveAllColumns()
    table.AddColumn(regions)
    table.AddColumn(volumes)
    table_node.SetColumnUnitLabel("Volume", "mL")
    table_node.SetColumnDescription("Volume", "Volume of the region in millilitres")
    table_node.SetUseColumnTitleAsColumnHeader(True)
    table_node.Modified()
    return table_node


def read_volumes_table(segmentation_node) -> Dict[str, float]:
    """The region volumes (mL) of the segmentation's table, by key (NCR, ED, ET, TC, WT); empty if none."""
    table_node = segmentation_node.GetNodeReference(VOLUMES_TABLE_ROLE)
    if table_node is None:
        return {}
    rows = min(table_node.GetNumberOfRows(), len(VOLUME_KEYS))
    return {VOLUME_KEYS[row]: float(table_node.GetCellText(row, 1)) for row in range(rows)}


def place_beside(scene, node, reference_node) -> None:
    """Put a node in the subject-hierarchy folder (the study) of the reference volume."""
    hierarchy = scene.GetSubjectHierarchyNode()
    reference_item = hierarchy.GetItemByDataNode(reference_node)
    parent = hierarchy.GetItemParent(reference_item) if reference_item else 0
    if not parent:
        return
    # Slicer's GUI gives every node an item; a bare scene (tests, scripts) does not.
    item = hierarchy.GetItemByDataNode(node)
    if item:
        hierarchy.SetItemParent(item, parent)
    else:
        hierarchy.CreateItem(parent, node)


def volumes_from_summary(summary: Mapping[str, object]) -> Optional[Dict[str, float]]:
    """The engine's region volumes, when its summary has them all."""
    volumes = summary.get("volumes_ml")
    if not isinstance(volumes, dict) or not all(key in volumes for key in VOLUME_KEYS):
        return None
    return {key: float(volumes[key]) for key in VOLUME_KEYS}
