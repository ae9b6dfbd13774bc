"""MSTKDSegmentLib against a real MRML scene (slicer-core through trame-slicer's SlicerApp).

The engine runs as a child process; these tests use a protocol double of `mstkd segment`
(Testing/segment_protocol_double.py), and test_slicer_engine.py runs the real command.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pytest

pytest.importorskip("trame_slicer")

from slicer_helpers import (  # noqa: E402
    add_volume,
    double_engine,
    expected_labels,
    matrix_of,
    process_gone,
    scene_state,
    segment_ids,
    segment_mask,
    to_numpy,
    tumour_array,
    wait_until,
)

from mstkd.errors import MSTKDError  # noqa: E402

SUBREGION_IDS = ["MSTKD_NCR", "MSTKD_ED", "MSTKD_ET"]
NESTED_IDS = ["MSTKD_WT", "MSTKD_TC"]


@pytest.fixture
def app():
    from trame_slicer.core import SlicerApp

    return SlicerApp()


@pytest.fixture(params=["child", "warm"])
def logic(app, tmp_path, request, monkeypatch):
    """The logic with the protocol double as its engine: a child process per run, or the warm engine.

    Temporary files go to tmp_path/work; the double records the inputs it read in tmp_path/inputs.json.
    """
    from MSTKDSegmentLib import SegmentationLogic

    monkeypatch.setenv("MSTKD_DOUBLE_RECORD", str(tmp_path / "inputs.json"))
    (tmp_path / "work").mkdir()
    engine = double_engine(request.param)
    yield SegmentationLogic(
        app.scene,
        app.segmentations_logic,
        app.volumes_logic,
        engine=engine,
        work_folder=str(tmp_path / "work"),
    )
    if request.param == "warm":
        engine.close()


def test_the_double_takes_exactly_the_options_of_the_real_command():
    """The Lib's command line is checked by the real parser in every test that runs the double."""
    import segment_protocol_double

    from mstkd.cli.main import build_parser

    def segment_options(parser):
        (subcommands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        return sorted(subcommands.choices["segment"]._option_string_actions)

    assert segment_options(segment_protocol_double.parser()) == segment_options(build_parser())
    assert {"--flair", "--t2f", "--t1gd", "--reference", "--progress", "--summary"} <= set(
        segment_options(build_parser())
    )


def _exam(app, offset=(0, 0, 0)):
    """FLAIR and T1ce on one grid (T1ce is the default reference)."""
    t1ce = add_volume(
        app.scene, "exam T1 post Gd", tumour_array(offset=offset), (1.2, 1.0, 1.5), (5.0, -3.0, 2.0)
    )
    flair = add_volume(
        app.scene, "exam FLAIR", tumour_array(offset=offset) // 2, (1.2, 1.0, 1.5), (5.0, -3.0, 2.0)
    )
    return flair, t1ce


def _voxels(node):
    from vtkmodules.util import numpy_support

    return numpy_support.vtk_to_numpy(node.GetImageData().GetPointData().GetScalars()).copy()


def _study(app, node):
    hierarchy = app.scene.GetSubjectHierarchyNode()
    study = hierarchy.CreateStudyItem(
        hierarchy.CreateSubjectItem(hierarchy.GetSceneItemID(), "Patient"), "Study"
    )
    hierarchy.CreateItem(study, node)
    return study


def test_segment_writes_segments_with_terminology_on_the_reference_grid(app, logic):
    flair, t1ce = _exam(app)
    study = _study(app, t1ce)
    events = []
    seg = logic.segment({"flair": flair, "T1Gd": t1ce}, model="demo", nested=True, on_event=events.append)

    assert segment_ids(seg) == SUBREGION_IDS + NESTED_IDS
    expected = expected_labels(tumour_array())
    for segment_id in SUBREGION_IDS + NESTED_IDS:
        mask = segment_mask(seg, segment_id, t1ce)  # also checks the grid is the reference's
        np.testing.assert_array_equal(mask, expected[segment_id.split("_")[1]], err_msg=segment_id)

    import slicer
    from vtkmodules.vtkCommonCore import reference

    from MSTKDSegmentLib import ALL_SEGMENTS, terminology_tag

    segmentation = seg.GetSegmentation()
    terminologies = app.terminologies_logic
    types = {}
    for spec in ALL_SEGMENTS:
        segment = segmentation.GetSegment(spec.segment_id)
        assert segment.GetName() == spec.name
        np.testing.assert_allclose(segment.GetColor(), spec.colour)
        tag = reference("")
        assert segment.GetTag(segment.GetTerminologyEntryTagName(), tag)
        tag = str(tag)
        assert tag == terminology_tag(spec)
        entry = slicer.vtkSlicerTerminologyEntry()
        assert terminologies.DeserializeTerminologyEntry(tag, entry)
        assert entry.GetTerminologyContextName() == "Segmentation category and type - DICOM master list"
        assert entry.GetCategoryObject().GetCodeValue() == "49755003"
        assert entry.GetTypeObject().GetCodeValue() == spec.type_code[1]
        assert entry.GetTypeObject().GetCodingSchemeDesignator() == spec.type_code[0]
        assert entry.GetRegionObject().GetCodeValue() == "12738006"
        types[spec.key] = (
            entry.GetTypeObject().GetCodingSchemeDesignator(),
            entry.GetTypeObject().GetCodeValue(),
        )
    assert terminology_tag(ALL_SEGMENTS[0]).split("~")[2] == "SCT^6574001^Necrosis"
    # Each region its own code: DICOM SEG export and the terminology selector tell ET from TC.
    assert len(set(types.values())) == len(ALL_SEGMENTS) == 5
    assert types["ET"] == ("NCIt", "C113842")

    # Names and colours are the engine's.
    from mstkd.conventions import REGION_COLOURS, SUBREGION_COLOURS, SUBREGION_NAMES

    assert segmentation.GetSegment("MSTKD_NCR").GetName().startswith(SUBREGION_NAMES["ncr"])
    np.testing.assert_allclose(segmentation.GetSegment("MSTKD_ED").GetColor(), SUBREGION_COLOURS["ed"])
    np.testing.assert_allclose(segmentation.GetSegment("MSTKD_TC").GetColor(), REGION_COLOURS["TC"])

    # Geometry: the reference volume's, referenced for DICOM SEG export.
    role = seg.GetReferenceImageGeometryReferenceRole()
    assert seg.GetNodeReference(role) is t1ce
    reference_geometry = segmentation.GetConversionParameter("Reference image geometry")
    assert reference_geometry.startswith(";".join(f"{v:g}" for v in matrix_of(t1ce).ravel()[:1]))
    assert seg.GetTransformNodeID() is None

    # Provenance, volumes, subject hierarchy, progress.
    assert seg.GetAttribute("MSTKD.ModelName") == "demo"
    assert seg.GetAttribute("MSTKD.ModelSHA256") == "ab" * 32
    assert seg.GetAttribute("MSTKD.Sequences") == "flair,t1ce"
    assert seg.GetAttribute("MSTKD.Reference") == "t1ce"
    table = seg.GetNodeReference("MSTKDVolumesTable")
    voxel_ml = 1.2 * 1.0 * 1.5 / 1000
    rows = {table.GetCellText(r, 0): float(table.GetCellText(r, 1)) for r in range(table.GetNumberOfRows())}
    assert rows["Whole tumour (WT)"] == pytest.approx(expected["WT"].sum() * voxel_ml, abs=0.01)
    assert rows["Enhancing tumour (ET)"] == pytest.approx(expected["ET"].sum() * voxel_ml, abs=0.01)
    assert table.GetColumnUnitLabel("Volume") == "mL"
    from MSTKDSegmentLib import read_volumes_table

    assert read_volumes_table(seg)["TC"] == pytest.approx(
        (expected["NCR"] | expected["ET"]).sum() * voxel_ml, abs=0.01
    )
    hierarchy = app.scene.GetSubjectHierarchyNode()
    assert hierarchy.GetItemParent(hierarchy.GetItemByDataNode(seg)) == study
    assert hierarchy.GetItemParent(hierarchy.GetItemByDataNode(table)) == study
    fractions = [e.fraction for e in events if not isinstance(e, str)]
    assert fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert "loading model demo" in [e for e in events if isinstance(e, str)]
    assert not any("it/s" in e for e in events if isinstance(e, str))  # progress bars stay out of the log


def test_rerun_updates_its_segments_by_id_and_keeps_user_segments_and_names(app, logic):
    flair, t1ce = _exam(app)
    seg = logic.segment({"flair": flair, "t1ce": t1ce}, model="demo", nested=True)

    import slicer
    from vtkmodules.util import numpy_support

    # The user adds a segment of their own, painted, and renames one of ours.
    segmentation = seg.GetSegmentation()
    user_id = segmentation.AddEmptySegment("", "My resection plan")
    painted = np.zeros(tumour_array().shape, dtype=np.uint8)
    painted[1:4, 1:5, 1:6] = 1
    paint = add_volume(app.scene, "paint", painted, (1.2, 1.0, 1.5), (5.0, -3.0, 2.0))
    labelmap = slicer.vtkSlicerSegmentationsModuleLogic.CreateOrientedImageDataFromVolumeNode(paint)
    assert slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        labelmap, seg, user_id, slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE
    )
    app.scene.RemoveNode(paint)
    segmentation.GetSegment("MSTKD_ED").SetName("Oedema (checked)")

    # The exam changes (a shifted tumour), and the user re-runs into the same node without nested regions.
    shifted = tumour_array(offset=(2, 1, 3))
    t1ce.GetImageData().GetPointData().SetScalars(numpy_support.numpy_to_vtk(shifted.ravel(), deep=True))
    t1ce.GetImageData().Modified()
    again = logic.segment({"flair": flair, "t1ce": t1ce}, model="demo", segmentation=seg, nested=False)

    assert again is seg
    assert segment_ids(seg) == SUBREGION_IDS + [user_id]
    expected = expected_labels(shifted)
    for segment_id in SUBREGION_IDS:
        np.testing.assert_array_equal(segment_mask(seg, segment_id, t1ce), expected[segment_id.split("_")[1]])
    np.testing.assert_array_equal(segment_mask(seg, user_id, t1ce), painted.astype(bool))
    assert segmentation.GetSegment("MSTKD_ED").GetName() == "Oedema (checked)"
    tables = app.scene.GetNodesByClass("vtkMRMLTableNode")
    assert tables.GetNumberOfItems() == 1  # the volumes table is updated, not duplicated


def _started(run) -> int:
    """Wait until a 'slow' or 'stubborn' run of the double reports its grandchild; returns its pid."""
    from MSTKDSegmentLib import Progress

    grandchild = []

    def reported() -> bool:
        for event in run.poll():
            if isinstance(event, Progress) and event.message.startswith("grandchild"):
                grandchild.append(int(event.message.split()[1]))
        return bool(grandchild)

    assert wait_until(reported, 20), run.log
    return grandchild[0]


@pytest.mark.parametrize("model", ["slow", "stubborn"])
def test_cancel_returns_at_once_then_ends_the_engine_and_its_children_and_leaves_the_scene(app, logic, model):
    pytest.importorskip("psutil")
    from MSTKDSegmentLib import SegmentationRequest

    flair, t1ce = _exam(app)
    existing = app.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "existing")
    existing.GetSegmentation().AddEmptySegment("mine", "Mine")
    before = scene_state(app.scene)
    run = logic.start(SegmentationRequest({"flair": flair, "t1ce": t1ce}, model=model, segmentation=existing))
    grandchild = _started(run)
    engine = run.process.pid
    assert not run.finished and run.progress.stage == "infer"

    started = time.monotonic()
    run.cancel()
    # The GUI thread must not wait for the engine: a stubborn one ignores SIGTERM for the 3 s grace.
    assert time.monotonic() - started < 1.0

    assert run.finished and run.cancelled
    with pytest.raises(MSTKDError, match="cancelled"):
        run.finish()
    assert wait_until(lambda: process_gone(engine) and process_gone(grandchild))
    assert wait_until(lambda: not run.folder.exists())
    assert scene_state(app.scene) == before
    assert segment_ids(existing) == ["mine"]


def test_an_engine_that_dies_mid_run_fails_the_run_readably_and_its_children_go_too(app, logic):
    psutil = pytest.importorskip("psutil")
    from MSTKDSegmentLib import SegmentationRequest

    flair, t1ce = _exam(app)
    before = scene_state(app.scene)
    run = logic.start(SegmentationRequest({"flair": flair, "t1ce": t1ce}, model="slow"))
    grandchild = _started(run)  # it holds the engine's output pipes open
    psutil.Process(run.process.pid).kill()
    assert wait_until(lambda: run.finished)
    with pytest.raises(MSTKDError, match=r"The segmentation process failed \(exit status -9\)"):
        run.finish()
    assert wait_until(lambda: process_gone(grandchild))
    assert scene_state(app.scene) == before


def test_inputs_under_a_transform_are_hardened_on_copies_and_the_result_follows_the_reference(
    app, logic, tmp_path, monkeypatch
):
    import slicer
    from vtkmodules.vtkCommonCore import vtkPoints
    from vtkmodules.vtkCommonMath import vtkMatrix4x4
    from vtkmodules.vtkCommonTransforms import vtkThinPlateSplineTransform, vtkTransform

    flair, t1ce = _exam(app)
    rotation = vtkTransform()
    rotation.Translate(10.0, -4.0, 7.0)
    rotation.RotateZ(30.0)
    transform = app.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "moved")
    transform.SetMatrixTransformToParent(rotation.GetMatrix())
    t1ce.SetAndObserveTransformNodeID(transform.GetID())
    local_before = matrix_of(t1ce)
    record = tmp_path / "inputs.json"  # where the double writes the geometry of what it read
    voxels_before = [(n.GetImageData().GetMTime(), _voxels(n)) for n in (flair, t1ce)]

    seg = logic.segment({"flair": flair, "t1ce": t1ce}, model="demo")

    # The user's nodes are untouched...
    assert t1ce.GetTransformNodeID() == transform.GetID()
    np.testing.assert_array_equal(matrix_of(t1ce), local_before)
    for node, (mtime, voxels) in zip((flair, t1ce), voxels_before):
        assert node.GetImageData().GetMTime() == mtime
        np.testing.assert_array_equal(_voxels(node), voxels)
    # ...the engine read the hardened geometry (LPS on disk)...
    to_world = np.array([[rotation.GetMatrix().GetElement(r, c) for c in range(4)] for r in range(4)])
    hardened = to_world @ local_before
    written = json.loads(record.read_text())["t1ce"]
    lps = np.diag([-1.0, -1.0, 1.0])
    np.testing.assert_allclose(written["origin"], lps @ hardened[:3, 3], atol=1e-4)
    direction = np.array(written["direction"]).reshape(3, 3) * np.array(written["spacing"])
    np.testing.assert_allclose(direction, lps @ hardened[:3, :3], atol=1e-4)
    # ...and the segmentation sits under the reference's transform, on its local grid, voxel for voxel.
    assert seg.GetTransformNodeID() == transform.GetID()
    np.testing.assert_array_equal(segment_mask(seg, "MSTKD_ET", t1ce), expected_labels(tumour_array())["ET"])

    # An existing segmentation under a transform of its own gets the result in its own coordinates.
    shift = vtkTransform()
    shift.Translate(-6.0, 2.0, 3.0)
    other = app.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "other")
    other.SetMatrixTransformToParent(shift.GetMatrix())
    existing = app.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "existing")
    existing.SetAndObserveTransformNodeID(other.GetID())
    logic.segment({"flair": flair, "t1ce": t1ce}, model="demo", segmentation=existing)
    image = slicer.vtkOrientedImageData()
    existing.GetBinaryLabelmapRepresentation("MSTKD_ET", image)
    grid = vtkMatrix4x4()
    image.GetImageToWorldMatrix(grid)
    to_other = np.linalg.inv([[shift.GetMatrix().GetElement(r, c) for c in range(4)] for r in range(4)])
    np.testing.assert_allclose(to_numpy(grid), to_other @ hardened, atol=1e-6)

    # A non-linear transform is refused with a message that says what to do.
    source, target = vtkPoints(), vtkPoints()
    for point in ((0, 0, 0), (40, 0, 0), (0, 40, 0), (0, 0, 40), (20, 20, 20)):
        source.InsertNextPoint(point)
        target.InsertNextPoint([c + (3.0 if point == (20, 20, 20) else 0.0) for c in point])
    spline = vtkThinPlateSplineTransform()
    spline.SetSourceLandmarks(source)
    spline.SetTargetLandmarks(target)
    warp = app.scene.AddNewNodeByClass("vtkMRMLTransformNode", "warp")
    warp.SetAndObserveTransformToParent(spline)
    flair.SetAndObserveTransformNodeID(warp.GetID())
    assert not warp.IsTransformToWorldLinear()
    with pytest.raises(MSTKDError, match="FLAIR volume|Harden transform"):
        logic.segment({"flair": flair, "t1ce": t1ce}, model="demo")


def test_inputs_on_different_grids_give_a_result_on_the_chosen_reference(app, logic, tmp_path, monkeypatch):
    t1ce = add_volume(app.scene, "T1ce", tumour_array(), (1.2, 1.0, 1.5), (5.0, -3.0, 2.0))
    oblique = [[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    flair_array = tumour_array((16, 20, 22))
    flair = add_volume(app.scene, "FLAIR", flair_array, (2.0, 2.5, 3.0), (-20.0, 11.0, 4.0), oblique)
    record = tmp_path / "inputs.json"  # where the double writes the geometry of what it read

    seg = logic.segment({"flair": flair, "t1ce": t1ce}, model="demo")
    np.testing.assert_array_equal(
        segment_mask(seg, "MSTKD_NCR", t1ce), expected_labels(tumour_array())["NCR"]
    )
    sizes = {s: g["size"] for s, g in json.loads(record.read_text()).items()}
    assert sizes == {"flair": [22, 20, 16], "t1ce": [32, 28, 24]}

    on_flair = logic.segment({"flair": flair, "t1ce": t1ce}, model="demo", reference="FLAIR")
    assert on_flair is not seg
    np.testing.assert_array_equal(
        segment_mask(on_flair, "MSTKD_ED", flair), expected_labels(flair_array)["ED"]
    )
    assert on_flair.GetAttribute("MSTKD.Reference") == "flair"


@pytest.mark.parametrize(
    ("model", "message", "absent"),
    [
        (
            "missing",
            r"^'missing' is neither a model file nor a model in the registry; give the path",
            "mstkd",
        ),
        (
            "crash",
            r"^The segmentation process failed \(exit status 1\): RuntimeError: CUDA out of memory",
            None,
        ),
        ("wrong-grid", r"grid other than the reference volume's", None),
    ],
)
def test_a_failing_engine_gives_a_readable_error_and_an_unchanged_scene(app, logic, model, message, absent):
    flair, t1ce = _exam(app)
    before = scene_state(app.scene)
    with pytest.raises(MSTKDError, match=message) as error:
        logic.segment({"flair": flair, "t1ce": t1ce}, model=model)
    assert "Traceback" not in str(error.value) and "\n" not in str(error.value)
    if absent:
        assert not str(error.value).startswith(absent)
    assert scene_state(app.scene) == before


def test_a_blocking_run_that_takes_too_long_is_stopped(app, logic, tmp_path):
    flair, t1ce = _exam(app)
    before = scene_state(app.scene)
    with pytest.raises(MSTKDError, match="took longer than 1 s"):
        logic.segment({"flair": flair, "t1ce": t1ce}, model="slow", timeout_s=1.0)
    assert scene_state(app.scene) == before
    assert wait_until(lambda: list((tmp_path / "work").iterdir()) == [])  # the temporary folder is gone


def test_requests_are_checked_before_anything_starts(app, logic):
    from MSTKDSegmentLib import SegmentationRequest, duplicate_inputs

    flair, t1ce = _exam(app)
    labels = app.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "labels")
    labels.SetAndObserveImageData(flair.GetImageData())
    with pytest.raises(MSTKDError, match="at least one"):
        logic.start(SegmentationRequest({"flair": None}))
    with pytest.raises(MSTKDError, match="is a label map"):
        logic.start(SegmentationRequest({"t2": labels}))
    with pytest.raises(MSTKDError, match="not among the inputs"):
        logic.start(SegmentationRequest({"flair": flair}, reference="t1ce"))
    with pytest.raises(MSTKDError, match="Unknown device"):
        logic.start(SegmentationRequest({"flair": flair}, device="tpu"))
    with pytest.raises(MSTKDError, match="among x, y and z"):
        logic.start(SegmentationRequest({"flair": flair}, mirror_axes="xx"))
    # The engine's device names: one GPU of several, and Apple's GPU, are requests the engine takes.
    from mstkd.conventions import parse_device

    assert logic.check(SegmentationRequest({"flair": flair}, device="CUDA:1"))[1] == "flair"
    assert parse_device("CUDA:1") == "cuda:1" and parse_device("mps") == "mps"
    assert duplicate_inputs({"flair": flair, "t2": flair, "t1ce": t1ce}) == [
        "FLAIR and T2 are the same volume 'exam FLAIR'; choose a different volume for each sequence, "
        "or leave one empty."
    ]
    assert duplicate_inputs({"flair": flair, "t1ce": t1ce}) == []


def test_the_brain_extraction_and_the_brain_mask_go_to_the_engine_and_back(app, logic):
    from MSTKDSegmentLib import BRAIN_SEGMENT, SegmentationRequest, read_notes

    flair, t1ce = _exam(app)
    seg = logic.segment({"flair": flair, "t1ce": t1ce}, brain_extraction="hd-bet", brain_mask=True)
    assert segment_ids(seg) == [*SUBREGION_IDS, BRAIN_SEGMENT.segment_id]
    np.testing.assert_array_equal(segment_mask(seg, BRAIN_SEGMENT.segment_id, t1ce), tumour_array() > 100)
    (extraction,) = [n.text for n in read_notes(seg) if n.kind == "brain-extraction"]
    assert extraction.startswith("hd-bet on T1Gd")  # the engine was asked for HD-BET, and said so

    run = logic.start(
        SegmentationRequest({"flair": flair, "t1ce": t1ce}, segmentation=seg, brain_extraction="none")
    )
    assert run.wait(60)
    assert run.finish() is seg
    assert segment_ids(seg) == SUBREGION_IDS  # no mask asked: the earlier one goes
    assert run.summary["brain_extraction"]["method"] == "none"
    assert not list(run.folder.parent.glob("mstkd-segment-*"))  # the mask went with the other files
    with pytest.raises(MSTKDError, match="Unknown brain extraction 'bet'; choose one of auto, deepbet"):
        logic.start(SegmentationRequest({"flair": flair}, brain_extraction="bet"))


def test_sequences_are_guessed_from_names_and_series_descriptions(app):
    from MSTKDSegmentLib import assign_sequences, guess_node_sequence

    scene = app.scene
    small = np.zeros((2, 2, 2), dtype=np.int16)
    names = [
        "3: AX T1 POST GAD",
        "Localizer",
        "sag_T2W_TSE",
        "BraTS-GLI-00001-000-t2f",
        "t1_mprage_native",
        "T2 again",
    ]
    nodes = [add_volume(scene, name, small) for name in names]
    assert [guess_node_sequence(n) for n in nodes] == ["t1ce", None, "t2", "flair", "t1", "t2"]
    assigned = assign_sequences(nodes)
    assert list(assigned) == ["flair", "t1", "t1ce", "t2"]
    assert assigned["t2"] is nodes[2]  # the first volume of a sequence wins
    unnamed = add_volume(scene, "Series 7", small)
    assert guess_node_sequence(unnamed, ["Ax FLAIR post"]) == "flair"  # a DICOM series description
    unnamed.SetAttribute("DICOM.SeriesDescription", "AX T2")
    assert guess_node_sequence(unnamed) == "t2"


def test_load_case_folder_loads_each_sequence_under_a_study(app, tmp_path):
    import SimpleITK as sitk

    from MSTKDSegmentLib import SegmentationLogic

    logic = SegmentationLogic(app.scene, app.segmentations_logic, app.volumes_logic)
    image = sitk.GetImageFromArray(tumour_array((8, 9, 10)))
    image.SetSpacing((1.0, 2.0, 3.0))
    case = tmp_path / "BraTS2021_00042"
    case.mkdir()
    for name in ("flair", "t1ce", "seg"):
        sitk.WriteImage(image, str(case / f"BraTS2021_00042_{name}.nii.gz"))

    for folder in (case, tmp_path):  # the case's folder, or the folder holding it
        case_id, nodes = logic.load_case(folder)
        assert case_id == "BraTS2021_00042"
        assert list(nodes) == ["flair", "t1ce"]
        assert nodes["t1ce"].GetName().startswith("BraTS2021_00042_t1ce")
        assert not nodes["flair"].IsA("vtkMRMLLabelMapVolumeNode")
        assert nodes["flair"].GetSpacing() == pytest.approx((1.0, 2.0, 3.0))
        hierarchy = app.scene.GetSubjectHierarchyNode()
        study = hierarchy.GetItemParent(hierarchy.GetItemByDataNode(nodes["flair"]))
        assert hierarchy.GetItemName(study) == "MRI"
        assert hierarchy.GetItemName(hierarchy.GetItemParent(study)) == "BraTS2021_00042"

    (tmp_path / "other").mkdir()
    sitk.WriteImage(image, str(tmp_path / "other" / "caseB_t2.nrrd"))
    with pytest.raises(MSTKDError, match="holds 2 cases"):
        logic.load_case(tmp_path)


def test_dicom_folders_are_recognised(tmp_path):
    from MSTKDSegmentLib import is_dicom_folder

    series = tmp_path / "series"
    series.mkdir()
    (series / "IM0001").write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 16)
    assert is_dicom_folder(tmp_path)
    (tmp_path / "notes.txt").write_text("not an image")
    assert is_dicom_folder(tmp_path)
    (series / "t1.nii.gz").write_bytes(b"")
    assert not is_dicom_folder(tmp_path)


def test_synthetic_case_loads_four_volumes_without_temporary_files(app):
    from MSTKDSegmentLib import SegmentationLogic, assign_sequences

    logic = SegmentationLogic(app.scene, app.segmentations_logic, app.volumes_logic)
    nodes = logic.load_phantom(seed=3, shape=(32, 32, 24))
    assert list(nodes) == ["flair", "t1", "t1ce", "t2"]
    assert assign_sequences(nodes.values()) == nodes  # their names say what they are
    for node in nodes.values():
        assert node.GetImageData().GetDimensions() == (32, 32, 24)
        assert node.GetStorageNode() is None


def test_model_choices_read_the_registry_leniently(tmp_path):
    from MSTKDSegmentLib import ModelChoice, model_choices

    registry = tmp_path / "registry.json"
    registry.write_text(
        json.dumps({"format_version": 1, "models": [{"name": "demo", "description": "Demo"}, {}]})
    )
    assert model_choices(registry) == [ModelChoice("demo", "Demo")]
    registry.write_text(json.dumps([{"name": "a"}, {"name": "b", "intended_use": "research"}]))
    assert model_choices(registry) == [ModelChoice("a"), ModelChoice("b", "", "research")]
    registry.write_text("{not json")
    assert model_choices(registry) == []
    assert model_choices(tmp_path / "absent.json") == []
    assert isinstance(model_choices(), list)  # the engine's own registry, whatever it holds


def test_progress_lines_and_time_remaining():
    from MSTKDSegmentLib import Progress, format_duration
    from MSTKDSegmentLib.process import ProgressClock, parse_progress

    assert parse_progress('{"stage": "infer", "fraction": 0.5, "message": "window 3/6"}') == Progress(
        "infer", 0.5, "window 3/6"
    )
    assert parse_progress('{"stage": "x", "fraction": 7}') == Progress("x", 1.0, "")
    assert parse_progress("not json") is None and parse_progress("[1, 2]") is None
    now = [100.0]
    clock = ProgressClock(lambda: now[0])
    assert clock.remaining_s() is None
    now[0] = 110.0
    clock.update(Progress("infer", 0.25, ""))
    assert clock.remaining_s() == pytest.approx(30.0)
    clock.update(Progress("infer", 0.1, ""))  # fractions never go back
    assert clock.fraction == 0.25
    assert [format_duration(s) for s in (3, 42, 150, 4000)] == [
        "a few seconds",
        "about 40 s",
        "about 2 min",
        "about 1 h 7 min",
    ]


def test_the_lib_imports_only_what_a_bare_slicer_has():
    """Slicer imports the module at start-up, before any dependency is installed: numpy and SimpleITK only."""
    import subprocess
    import sys

    from slicer_helpers import MODULE_DIR

    code = (
        f"import sys; sys.path.insert(0, {str(MODULE_DIR)!r}); import MSTKDSegmentLib; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'qt', 'ctk', 'PySide6', 'PyQt5', 'monai', 'scipy', 'nilearn', 'yaml', 'tqdm', "
        "'safetensors', 'matplotlib', 'psutil')); print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_notes_on_how_the_result_was_made_are_kept_on_the_segmentation(app, logic):
    from MSTKDSegmentLib import format_notes, read_notes

    flair, t1ce = _exam(app)
    seg = logic.segment({"flair": flair, "t1ce": t1ce}, model="registered")

    notes = read_notes(seg)  # from the node: saved with the scene, shown in the panel after the run
    assert [(n.kind, n.level) for n in notes] == [
        ("sequences", "info"),
        ("brain-extraction", "info"),
        ("registration", "info"),
        ("device", "info"),
    ]
    assert format_notes(notes).splitlines() == [
        "Sequences: segmented from FLAIR + T1Gd; T1, T2 not available (the model works without them)",
        "Brain extraction: none (the double strips nothing)",
        "Registration: t2 registered to t1ce: moved 1.2 mm",
        "Device: ran on cpu",
    ]


def test_notes_put_warnings_first_and_take_kinds_to_come():
    from MSTKDSegmentLib.notes import Note, format_notes, result_notes

    summary = {
        "sequences": ["t1ce"],
        "device": "cpu",
        "notes": [
            {"kind": "registration", "text": "flair registered"},
            {"kind": "fallback", "text": "cuda ran out of memory; retried on the CPU"},
            {"kind": "tumour-side", "text": "left", "level": "info"},
        ],
        "brain_extraction": {"method": "deepbet", "sequence": "t1ce", "seconds": 7.21, "brain_ml": 1480.0},
        "trust": {"warnings": ["ET from FLAIR alone is unreliable"]},
    }
    notes = result_notes(summary, ["t1ce"])
    assert [n.kind for n in notes] == [
        "trust",
        "fallback",
        "sequences",
        "brain-extraction",
        "registration",
        "device",
        "tumour-side",
    ]
    assert notes[0] == Note("trust", "ET from FLAIR alone is unreliable", "warning")
    assert notes[3].text == "deepbet on T1Gd, 7.2 s (brain 1480 mL)"
    assert notes[1] == Note("fallback", "cuda ran out of memory; retried on the CPU", "warning")
    assert (
        format_notes(notes).splitlines()[1]
        == "Warning - Fallback: cuda ran out of memory; retried on the CPU"
    )
    assert format_notes(notes).splitlines()[-1] == "Tumour side: left"


def test_label_maps_are_never_taken_as_sequences(app):
    from MSTKDSegmentLib import assign_sequences, is_mri_volume

    volume = add_volume(app.scene, "AX FLAIR", np.zeros((2, 2, 2), dtype=np.int16))
    labels = app.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "FLAIR lesion labels")
    assert not is_mri_volume(labels) and is_mri_volume(volume)
    assert assign_sequences([labels, volume]) == {"flair": volume}


def test_the_sample_data_file_is_fetched_like_a_download_and_names_a_phantom(tmp_path):
    import urllib.request

    from MSTKDSegmentLib import read_sample, sample_uri
    from MSTKDSegmentLib.sample import SAMPLE_FILE

    # Sample Data fetches a sample's file with urllib into its cache, then loads it by its file type.
    fetched, _ = urllib.request.urlretrieve(sample_uri(), str(tmp_path / SAMPLE_FILE.name))
    assert read_sample(fetched) == (0, (120, 120, 78))
    (tmp_path / "bad.mstkdsample").write_text('{"seed": 1, "shape": [4, 4]}')
    with pytest.raises(MSTKDError, match="needs three sizes of 16 or more"):
        read_sample(tmp_path / "bad.mstkdsample")
    with pytest.raises(MSTKDError, match="is not a synthetic-case file"):
        read_sample(tmp_path / "absent.mstkdsample")
