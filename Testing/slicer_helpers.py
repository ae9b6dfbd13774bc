"""Helpers for the Slicer-module tests: a real MRML scene (slicer-core via trame-slicer), volumes, checks."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODULE_DIR = ROOT / "MSTKDSegment"
PROTOCOL_DOUBLE = Path(__file__).resolve().parent / "segment_protocol_double.py"

if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))


def double_command() -> list:
    """The engine command of the tests: the protocol double, run by this Python."""
    return [sys.executable, str(PROTOCOL_DOUBLE)]


def double_logic(app, work_folder):
    """The Lib's logic on a SlicerApp's scene, running the protocol double as its engine."""
    from MSTKDSegmentLib import SegmentationLogic

    return SegmentationLogic(
        app.scene,
        app.segmentations_logic,
        app.volumes_logic,
        command=double_command(),
        work_folder=str(work_folder),
    )


def real_engine_logic(app, warm: bool = True):
    """(logic, engine): the Lib's logic on a SlicerApp's scene with the real engine of this Python,
    warm (`mstkd serve`, returned to be closed) or a `mstkd segment` process per run (engine None)."""
    from MSTKDSegmentLib import EngineService, SegmentationLogic, child_environment, serve_command

    engine = EngineService(serve_command(sys.executable), child_environment()) if warm else None
    logic = SegmentationLogic(
        app.scene, app.segmentations_logic, app.volumes_logic, python=sys.executable, engine=engine
    )
    return logic, engine


def double_engine(kind: str):
    """The tests' engine running the protocol double: a child process per run ('child'), or warm ('warm')."""
    from MSTKDSegmentLib.engine import child_environment
    from MSTKDSegmentLib.process import ChildProcessEngine
    from MSTKDSegmentLib.service import EngineService

    if kind == "warm":
        return EngineService([*double_command(), "serve"], child_environment())
    return ChildProcessEngine(double_command(), child_environment())


def wait_until(condition, timeout_s: float = 15.0) -> bool:
    """Poll `condition()` until it holds or `timeout_s` passes; returns whether it held."""
    import time

    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def process_gone(pid: int) -> bool:
    """True when a process no longer runs (or is a zombie waiting to be reaped)."""
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def tumour_array(shape: Sequence[int] = (24, 28, 32), offset: Tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """A (k, j, i) int16 volume: brain 50, oedema 150, necrosis 250, enhancing 350 (see the double)."""
    a = np.full(tuple(shape), 50, dtype=np.int16)
    k, j, i = offset
    a[6 + k : 18 + k, 6 + j : 22 + j, 6 + i : 26 + i] = 150
    a[9 + k : 15 + k, 9 + j : 19 + j, 9 + i : 23 + i] = 250
    a[11 + k : 13 + k, 12 + j : 16 + j, 12 + i : 20 + i] = 350
    return a


def expected_labels(array: np.ndarray) -> Dict[str, np.ndarray]:
    """The masks the double writes for a volume, by region key."""
    ncr = (array > 200) & (array <= 300)
    ed = (array > 100) & (array <= 200)
    et = array > 300
    return {"NCR": ncr, "ED": ed, "ET": et, "WT": ncr | ed | et, "TC": ncr | et}


def add_volume(
    scene,
    name: str,
    array: np.ndarray,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    directions: Optional[Sequence[Sequence[float]]] = None,
):
    """A scalar volume node in the scene holding a (k, j, i) array on the given grid."""
    from vtkmodules.util import numpy_support
    from vtkmodules.vtkCommonDataModel import vtkImageData

    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    image = vtkImageData()
    image.SetDimensions(array.shape[2], array.shape[1], array.shape[0])
    image.GetPointData().SetScalars(
        numpy_support.numpy_to_vtk(np.ascontiguousarray(array).ravel(), deep=True)
    )
    node.SetAndObserveImageData(image)
    node.SetSpacing(*spacing)
    node.SetOrigin(*origin)
    if directions is not None:
        node.SetIJKToRASDirections(*[float(v) for row in directions for v in row])
    node.CreateDefaultDisplayNodes()
    return node


def matrix_of(node):
    """A volume node's IJK-to-RAS matrix as a numpy array."""
    from vtkmodules.vtkCommonMath import vtkMatrix4x4

    matrix = vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return to_numpy(matrix)


def to_numpy(matrix) -> np.ndarray:
    """A vtkMatrix4x4 as a numpy array."""
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def segment_mask(segmentation_node, segment_id: str, reference_node) -> np.ndarray:
    """A segment's voxels as a (k, j, i) mask on the reference grid, checking that it lies on that grid."""
    import slicer
    from vtkmodules.util import numpy_support
    from vtkmodules.vtkCommonMath import vtkMatrix4x4

    image = slicer.vtkOrientedImageData()
    segmentation_node.GetBinaryLabelmapRepresentation(segment_id, image)
    dims = reference_node.GetImageData().GetDimensions()
    mask = np.zeros((dims[2], dims[1], dims[0]), dtype=bool)
    extent = image.GetExtent()
    if extent[1] < extent[0]:
        return mask
    matrix = vtkMatrix4x4()
    image.GetImageToWorldMatrix(matrix)
    np.testing.assert_allclose(to_numpy(matrix), matrix_of(reference_node), atol=1e-6)
    assert extent[0] >= 0 and extent[2] >= 0 and extent[4] >= 0
    assert extent[1] < dims[0] and extent[3] < dims[1] and extent[5] < dims[2]
    values = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    shape = (extent[5] - extent[4] + 1, extent[3] - extent[2] + 1, extent[1] - extent[0] + 1)
    mask[extent[4] : extent[5] + 1, extent[2] : extent[3] + 1, extent[0] : extent[1] + 1] = (
        values.reshape(shape) > 0
    )
    return mask


def segment_ids(segmentation_node) -> list:
    """The segment IDs of a segmentation node, in order."""
    segmentation = segmentation_node.GetSegmentation()
    return [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]


def scene_state(scene) -> list:
    """Every node of the scene with its modification time: equal states mean an untouched scene."""
    nodes = scene.GetNodes()
    state = []
    for index in range(nodes.GetNumberOfItems()):
        node = nodes.GetItemAsObject(index)
        state.append((node.GetID(), node.GetMTime()))
    return sorted(state)
