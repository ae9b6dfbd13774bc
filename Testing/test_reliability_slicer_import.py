"""The Slicer Lib's import of the engine's result against damaged and inconsistent results.

Each row lets the engine's protocol double run for real on an exam in a real MRML scene
(slicer-core), then damages what it wrote (the label map, the summary) as a full disk, a crash
or a bug of the engine would, and calls `finish()`: it must raise MSTKDError whose message's
first line says what is wrong, leave the scene exactly as it was (no segmentation, no table),
leave the input volumes' voxels unchanged and remove its temporary folder.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

pytest.importorskip("trame_slicer")

import SimpleITK as sitk  # noqa: E402
from slicer_helpers import add_volume, double_logic, scene_state, tumour_array  # noqa: E402

from mstkd.errors import MSTKDError  # noqa: E402

OUTPUT, SUMMARY = "segmentation.nrrd", "summary.json"


@dataclass(frozen=True)
class ImportRow:
    """A way the engine's result can be wrong, and the start of the message that must say so."""

    name: str
    damage: Callable[[Path], None]
    message: str


def labels_of(folder: Path) -> sitk.Image:
    return sitk.ReadImage(str(folder / OUTPUT))


def rewrite_labels(edit, pixel=None):
    """Rewrite the label map with its (k, j, i) array changed by `edit` (on the same grid)."""

    def damage(folder: Path) -> None:
        image = labels_of(folder)
        values = sitk.GetArrayFromImage(image).astype(pixel or np.uint8)
        values = edit(values) if edit is not None else values
        changed = sitk.GetImageFromArray(values, isVector=values.ndim == 4)
        if values.ndim == 3:
            changed.CopyInformation(image)
        sitk.WriteImage(changed, str(folder / OUTPUT), useCompression=True)

    return damage


def set_value(value):
    def edit(values):
        values[0, 0, 0] = value
        return values

    return edit


def rewrite_summary(edit):
    def damage(folder: Path) -> None:
        data = json.loads((folder / SUMMARY).read_text())
        (folder / SUMMARY).write_text(json.dumps(edit(data)))

    return damage


def truncate(name: str, keep: float = 0.5):
    def damage(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: int(len(data) * keep)])

    return damage


def replace_file(name: str, data: bytes):
    return lambda folder: (folder / name).write_bytes(data)


def remove(name: str):
    return lambda folder: (folder / name).unlink()


def moved(offset):
    def damage(folder: Path) -> None:
        image = labels_of(folder)
        image.SetOrigin([o + d for o, d in zip(image.GetOrigin(), offset)])
        sitk.WriteImage(image, str(folder / OUTPUT), useCompression=True)

    return damage


def flipped(folder: Path) -> None:
    image = labels_of(folder)
    image.SetDirection([-d for d in image.GetDirection()])
    sitk.WriteImage(image, str(folder / OUTPUT), useCompression=True)


def doubled_wt(data):
    data["volumes_ml"]["WT"] *= 2
    return data


ROWS = [
    ImportRow("label-map-missing", remove(OUTPUT), r"The engine ended without writing a segmentation"),
    ImportRow(
        "label-map-empty",
        replace_file(OUTPUT, b""),
        r"Could not read .*segmentation.nrrd: it is damaged or not an image",
    ),
    ImportRow(
        "label-map-truncated",
        truncate(OUTPUT),
        r"Could not read .*segmentation.nrrd: (it is truncated|its NRRD header or data are invalid)",
    ),
    ImportRow(
        "label-map-garbage",
        replace_file(OUTPUT, b"NRRD0004\ntype: what\n\n"),
        r"Could not read .*segmentation.nrrd: its NRRD header or data are invalid",
    ),
    ImportRow(
        "label-map-a-folder",
        lambda f: ((f / OUTPUT).unlink(), (f / OUTPUT).mkdir()),
        r"The engine ended without writing a segmentation",
    ),
    ImportRow(
        "label-outside-the-convention",
        rewrite_labels(set_value(3)),
        r"The segmentation the engine wrote holds label value\(s\) \[3\]",
    ),
    ImportRow(
        "label-fractional",
        rewrite_labels(set_value(1.5), np.float32),
        r"The segmentation the engine wrote holds values that are not whole numbers",
    ),
    ImportRow(
        "label-not-a-number",
        rewrite_labels(set_value(np.nan), np.float32),
        r"Could not read .*segmentation.nrrd: it holds 1 NaN voxel values",
    ),
    ImportRow(
        "label-negative",
        rewrite_labels(set_value(-1), np.int16),
        r"The segmentation the engine wrote holds label value\(s\) \[-1\]",
    ),
    ImportRow(
        "label-above-255",
        rewrite_labels(set_value(260), np.uint16),
        r"The segmentation the engine wrote holds label value\(s\) \[260\]",
    ),
    ImportRow(
        "label-map-rgb",
        rewrite_labels(lambda v: np.stack([v, v, v], axis=-1)),
        r"The engine wrote a 3D image with 3 value\(s\) per voxel instead of a 3D label map",
    ),
    ImportRow(
        "label-map-moved",
        moved((0.0, 0.0, 7.0)),
        r"The engine returned a segmentation on a grid other than the reference volume's",
    ),
    ImportRow(
        "label-map-flipped",
        flipped,
        r"The engine returned a segmentation on a grid other than the reference volume's",
    ),
    ImportRow("summary-missing", remove(SUMMARY), r"The engine's summary of the segmentation cannot be read"),
    ImportRow(
        "summary-empty",
        replace_file(SUMMARY, b""),
        r"The engine's summary of the segmentation cannot be read",
    ),
    ImportRow(
        "summary-truncated", truncate(SUMMARY), r"The engine's summary of the segmentation cannot be read"
    ),
    ImportRow(
        "summary-a-list", replace_file(SUMMARY, b"[1, 2]"), r"The engine's summary is not a JSON object"
    ),
    ImportRow(
        "summary-in-another-convention",
        rewrite_summary(lambda d: {**d, "labels": "brats2023"}),
        r"The engine wrote labels in the 'brats2023' convention, not the 'brats2021' asked for",
    ),
    ImportRow(
        "summary-volumes-disagree",
        rewrite_summary(doubled_wt),
        r"The engine's summary gives WT [\d.]+ mL but its label map holds [\d.]+ mL",
    ),
]


@pytest.fixture(scope="module")
def app():
    from trame_slicer.core import SlicerApp

    return SlicerApp()


@pytest.fixture
def logic(app, tmp_path):
    return double_logic(app, tmp_path)


def voxels_digest(node) -> str:
    from vtkmodules.util import numpy_support

    values = numpy_support.vtk_to_numpy(node.GetImageData().GetPointData().GetScalars())
    return hashlib.sha256(values.tobytes()).hexdigest()


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.name)
def test_a_damaged_result_is_refused_and_the_scene_is_left_as_it_was(row, app, logic, tmp_path):
    from MSTKDSegmentLib import SegmentationRequest

    app.scene.Clear(0)
    t1ce = add_volume(app.scene, "exam T1Gd", tumour_array(), (1.2, 1.0, 1.5), (5.0, -3.0, 2.0))
    flair = add_volume(app.scene, "exam FLAIR", tumour_array() // 2, (1.2, 1.0, 1.5), (5.0, -3.0, 2.0))
    inputs = {node.GetID(): voxels_digest(node) for node in (t1ce, flair)}
    before = scene_state(app.scene)

    run = logic.start(SegmentationRequest({"flair": flair, "t1ce": t1ce}, model="demo"))
    assert run.wait(timeout_s=120) and run.process.returncode == 0, run.log
    row.damage(run.folder)
    with pytest.raises(MSTKDError) as error:
        run.finish()

    first = str(error.value).splitlines()[0]
    assert re.match(row.message, first), first
    assert scene_state(app.scene) == before
    assert {node.GetID(): voxels_digest(node) for node in (t1ce, flair)} == inputs
    assert not run.folder.exists() and list(tmp_path.iterdir()) == []


def test_the_table_holds_distinct_rows():
    assert len({row.name for row in ROWS}) == len(ROWS) >= 15


def test_an_engine_killed_by_a_signal_is_reported_and_leaves_no_trace(app, tmp_path):
    from MSTKDSegmentLib import SegmentationLogic

    app.scene.Clear(0)
    t1ce = add_volume(app.scene, "exam T1Gd", tumour_array())
    before = scene_state(app.scene)
    killed = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]
    logic = SegmentationLogic(app.scene, command=killed, work_folder=str(tmp_path))
    with pytest.raises(MSTKDError, match=r"^The segmentation process failed \(exit status -9\)"):
        logic.segment({"t1ce": t1ce})
    assert scene_state(app.scene) == before and list(tmp_path.iterdir()) == []


def test_the_engines_warnings_reach_the_run_and_the_segmentation(app, logic):
    app.scene.Clear(0)
    t1ce = add_volume(app.scene, "exam T1Gd", tumour_array())
    from MSTKDSegmentLib import SegmentationRequest

    run = logic.start(SegmentationRequest({"t1ce": t1ce}, model="demo"))
    assert run.wait(timeout_s=120)
    warning = "the brains of FLAIR and T2 overlap by only 0.90"
    rewrite_summary(lambda d: {**d, "warnings": [warning]})(run.folder)
    segmentation = run.finish()
    assert run.warnings == [warning]
    assert segmentation.GetAttribute("MSTKD.Warnings") == warning
