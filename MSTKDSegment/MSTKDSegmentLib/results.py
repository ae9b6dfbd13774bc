"""The engine's label map into a segmentation node: stable segment IDs, SNOMED terminology, colours,
reference geometry, nested regions, a table of region volumes, provenance attributes.

Segment IDs are fixed (MSTKD_NCR, ...), so a re-run replaces those segments and leaves every
other segment of the node alone. Name, colour and terminology are set when a segment is created
only: a user's later changes to them survive re-runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import slicer
from vtkmodules.util import numpy_support
from vtkmodules.vtkCommonCore import vtkDoubleArray, vtkStringArray
from vtkmodules.vtkCommonMath import vtkMatrix4x4

from mstkd.conventions import REGIONS, label_convention
from mstkd.errors import MSTKDError

CATEGORY_CONTEXT = "Segmentation category and type - DICOM master list"
ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"
MORPHOLOGICALLY_ALTERED = ("SCT", "49755003", "Morphologically Altered Structure")
BRAIN = ("SCT", "12738006", "Brain")
NONE_CODE = ("", "", "")

Code = Tuple[str, str, str]
Colour = Tuple[int, int, int]

VOLUMES_TABLE_ROLE = "MSTKDVolumesTable"
ATTRIBUTE_PREFIX = "MSTKD."


@dataclass(frozen=True)
class SegmentSpec:
    """One segment this module writes: its fixed ID, name, SNOMED type and colour."""

    key: str
    segment_id: str
    name: str
    type_code: Code
    colour: Colour
    nested: bool = False

    @property
    def colour_rgb(self) -> Tuple[float, float, float]:
        """The colour as 0..1 floats."""
        return tuple(c / 255.0 for c in self.colour)  # type: ignore[return-value]


# Colours: the DICOM master list's recommended ones where it has one (necrosis, oedema).
SUBREGION_SEGMENTS: Tuple[SegmentSpec, ...] = (
    SegmentSpec(
        "NCR", "MSTKD_NCR", "Necrotic tumour core (NCR)", ("SCT", "6574001", "Necrosis"), (216, 191, 216)
    ),
    SegmentSpec("ED", "MSTKD_ED", "Peritumoral oedema (ED)", ("SCT", "79654002", "Edema"), (140, 224, 228)),
    SegmentSpec(
        "ET", "MSTKD_ET", "Enhancing tumour (ET)", ("SCT", "86049000", "Neoplasm, Primary"), (255, 200, 40)
    ),
)
# The enhancing-tumour region is the ET segment itself, so only WT and TC are added.
NESTED_SEGMENTS: Tuple[SegmentSpec, ...] = (
    SegmentSpec(
        "WT", "MSTKD_WT", "Whole tumour (WT)", ("SCT", "108369006", "Neoplasm"), (120, 200, 90), True
    ),
    SegmentSpec(
        "TC", "MSTKD_TC", "Tumour core (TC)", ("SCT", "86049000", "Neoplasm, Primary"), (230, 80, 70), True
    ),
)
ALL_SEGMENTS = SUBREGION_SEGMENTS + NESTED_SEGMENTS
VOLUME_ROWS = ("NCR", "ED", "ET", "TC", "WT")


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
    segmentation.AddEmptySegment(spec.segment_id, spec.name, spec.colour_rgb)
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
    for key in VOLUME_ROWS:
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
    rows = min(table_node.GetNumberOfRows(), len(VOLUME_ROWS))
    return {VOLUME_ROWS[row]: float(table_node.GetCellText(row, 1)) for row in range(rows)}


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
    if not isinstance(volumes, dict) or not all(key in volumes for key in VOLUME_ROWS):
        return None
    return {key: float(volumes[key]) for key in VOLUME_ROWS}
