"""Volumes in and out of the scene: load a case's files, write the chosen inputs for the engine.

Inputs are written from copies: a volume under a linear transform is written with the transform
hardened into the copy's geometry, and the user's node is never touched.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np
import slicer
from vtkmodules.util import numpy_support
from vtkmodules.vtkCommonCore import vtkStringArray
from vtkmodules.vtkCommonDataModel import vtkImageData
from vtkmodules.vtkCommonMath import vtkMatrix4x4

from mstkd.cases import Case, discover_cases, find_case_files, name_a_few
from mstkd.conventions import DISPLAY_NAMES, SEQUENCES, SequenceMap, make_subset
from mstkd.errors import MSTKDError
from mstkd.imageio import PathLike, image_extension, strip_image_extension, write_image
from MSTKDSegmentLib.results import same_matrix

SYNTHETIC_SHAPE: Tuple[int, int, int] = (120, 120, 78)


def world_ijk_to_ras(node) -> vtkMatrix4x4:
    """The node's IJK-to-RAS matrix with its parent transforms applied; non-linear ones are refused."""
    matrix = vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    transform = node.GetParentTransformNode()
    if transform is None:
        return matrix
    to_world = vtkMatrix4x4()
    if not slicer.vtkMRMLTransformNode.GetMatrixTransformBetweenNodes(transform, None, to_world):
        raise MSTKDError(
            f"The volume '{node.GetName()}' is under a non-linear transform; harden it first "
            "(Data module: right-click the volume > Harden transform) or remove the transform."
        )
    world = vtkMatrix4x4()
    vtkMatrix4x4.Multiply4x4(to_world, matrix, world)
    return world


@dataclass(frozen=True)
class ExamSize:
    """What a run's time depends on: the brain's extent (mm), the voxels to read, the registrations."""

    extent_mm: Tuple[float, float, float]
    voxels: int
    registrations: int


def exam_size(inputs: SequenceMap[object], reference: str) -> ExamSize:
    """The size of an exam for the time estimate: the bounding box of the reference's non-zero voxels
    (a skull-stripped brain; the whole field of view otherwise), all inputs' voxels, and how many
    inputs lie on a grid other than the reference's (each is co-registered)."""
    node = inputs[reference]
    geometry = world_ijk_to_ras(node)
    image = node.GetImageData()
    dims = image.GetDimensions()
    voxels = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(dims[::-1])
    spacing = np.linalg.norm([[geometry.GetElement(r, c) for c in range(3)] for r in range(3)], axis=0)
    occupied = voxels != 0
    extent = []
    for axis, along in enumerate((2, 1, 0)):  # i, j, k of a (k, j, i) array
        others = tuple(a for a in range(3) if a != along)
        where = np.flatnonzero(occupied.any(axis=others))
        length = (where[-1] - where[0] + 1) if len(where) else dims[axis]
        extent.append(float(length * spacing[axis]))
    others = [n for s, n in inputs.items() if s != reference]
    registrations = sum(not _same_grid(n, node) for n in others)
    total = sum(int(np.prod(n.GetImageData().GetDimensions())) for n in inputs.values())
    return ExamSize(tuple(extent), total, registrations)  # type: ignore[arg-type]


def _same_grid(node, reference) -> bool:
    same_size = node.GetImageData().GetDimensions() == reference.GetImageData().GetDimensions()
    return same_size and same_matrix(world_ijk_to_ras(node), world_ijk_to_ras(reference))


def check_input_volume(node, label: str) -> None:
    """Raise with a readable message when a node cannot be a sequence input."""
    if node.IsA("vtkMRMLLabelMapVolumeNode"):
        raise MSTKDError(
            f"{label}: '{node.GetName()}' is a label map, not an MRI volume; choose an MRI volume."
        )
    image = node.GetImageData()
    if image is None or min(image.GetDimensions()) < 1 or image.GetPointData().GetScalars() is None:
        raise MSTKDError(f"{label}: '{node.GetName()}' holds no image data; load the volume again.")
    if image.GetNumberOfScalarComponents() != 1:
        raise MSTKDError(
            f"{label}: '{node.GetName()}' has {image.GetNumberOfScalarComponents()} components per voxel "
            "(colour or vector data); choose a grey-level MRI volume."
        )


def export_volume(node, path: PathLike) -> vtkMatrix4x4:
    """Write a volume (parent transform hardened, on a copy) to `path`; returns the geometry written."""
    geometry = world_ijk_to_ras(node)
    image = vtkImageData()
    image.ShallowCopy(node.GetImageData())
    copy = slicer.vtkMRMLScalarVolumeNode()
    copy.SetName(node.GetName())
    copy.SetAndObserveImageData(image)
    copy.SetIJKToRASMatrix(geometry)
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    storage.SetUseCompression(False)
    if not storage.WriteData(copy):
        raise MSTKDError(
            f"Could not write '{node.GetName()}' to {path}; check the free space of the temporary folder."
        )
    return geometry


def export_inputs(inputs: SequenceMap[object], folder: PathLike) -> SequenceMap[Path]:
    """Write each chosen sequence to <folder>/<sequence>.nrrd; returns the files."""
    files = SequenceMap({sequence: Path(folder) / f"{sequence}.nrrd" for sequence in inputs})
    for sequence, node in inputs.items():
        export_volume(node, files[sequence])
    return files


def load_volume_file(scene, volumes_logic, path: PathLike, name: Optional[str] = None):
    """Load one image file as a scalar volume node (never a label map) named after the file."""
    path = Path(path)
    name = name or strip_image_extension(path)
    node = volumes_logic.AddArchetypeScalarVolume(
        str(path), scene.GenerateUniqueName(name), 0, vtkStringArray()
    )
    if node is None:
        raise MSTKDError(f"Could not load {path}: it is damaged or not an image.")
    return node


def load_case_folder(scene, volumes_logic, folder: PathLike) -> Tuple[str, SequenceMap[object]]:
    """Load the sequences of the one case in `folder` (files directly in it, or one case below it).

    Returns the case id and the volume node of each sequence, placed under a study named after
    the case in subject hierarchy.
    """
    case = find_case(folder)
    nodes = SequenceMap(
        {s: load_volume_file(scene, volumes_logic, path) for s, path in case.sequences.items()}
    )
    place_in_study(scene, nodes.values(), case.case_id, "MRI")
    return case.case_id, nodes


def find_case(folder: PathLike) -> Case:
    """The case a folder holds: its own image files, else the single case found below it."""
    folder = Path(folder)
    if folder.is_dir() and any(p.is_file() and image_extension(p) for p in folder.iterdir()):
        case = find_case_files(folder)
    else:
        cases = discover_cases(folder).cases
        if len(cases) > 1:
            raise MSTKDError(
                f"{folder} holds {len(cases)} cases ({name_a_few(c.case_id for c in cases)}); "
                "choose the folder of one case."
            )
        case = cases[0]
    if not case.sequences:
        raise MSTKDError(f"Case '{case.case_id}' in {case.folder} has no MRI sequence, only a segmentation.")
    return case


def load_phantom(
    scene,
    volumes_logic,
    seed: int = 0,
    shape: Sequence[int] = SYNTHETIC_SHAPE,
    sequences: Sequence[str] = SEQUENCES,
) -> SequenceMap[object]:
    """Generate a synthetic BraTS-like case (mstkd.phantom) and load the chosen sequences into the scene."""
    from mstkd.phantom.generate import PHANTOM, generate_case

    case = generate_case(seed, 0, shape)
    patient = f"MSTKD synthetic case {seed}"
    folder = Path(tempfile.mkdtemp(prefix="mstkd-phantom-"))
    try:
        nodes = {}
        for sequence in make_subset(sequences).sequences:
            path = folder / f"{sequence}.nrrd"
            write_image(case.images[sequence], path, PHANTOM, compress=False)
            name = f"Synthetic{seed}_{DISPLAY_NAMES[sequence]}"
            nodes[sequence] = load_volume_file(scene, volumes_logic, path, name)
            # The file is temporary: drop it, so that saving the scene writes the volume anew.
            storage = nodes[sequence].GetStorageNode()
            if storage is not None:
                nodes[sequence].SetAndObserveStorageNodeID(None)
                scene.RemoveNode(storage)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    place_in_study(scene, nodes.values(), patient, "Synthetic MRI")
    return SequenceMap(nodes)


def place_in_study(scene, nodes, patient: str, study: str) -> int:
    """Put volumes under patient > study in subject hierarchy (unless already in a folder); returns it."""
    hierarchy = scene.GetSubjectHierarchyNode()
    subject = hierarchy.CreateSubjectItem(hierarchy.GetSceneItemID(), patient)
    study_item = hierarchy.CreateStudyItem(subject, study)
    for node in nodes:
        item = hierarchy.GetItemByDataNode(node)
        if not item:  # Slicer's GUI gives every node an item; a bare scene does not
            hierarchy.CreateItem(study_item, node)
        elif hierarchy.GetItemParent(item) == hierarchy.GetSceneItemID():
            hierarchy.SetItemParent(item, study_item)
    return study_item
