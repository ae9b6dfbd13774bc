"""MSTKDSegment.py's logic facade (what the Python console uses) against a real MRML scene.

Only what the Slicer application alone provides is stood in for: the scripted-module base
classes, i18n, the parameter-node decorator, the `qt` module, and of `slicer.app` its temporary
folder, its startup environment and its signals; the scene, the module logics, slicer.util and
vtk are the real ones.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import types

import numpy as np
import pytest

pytest.importorskip("trame_slicer")

from slicer_helpers import (  # noqa: E402
    add_volume,
    double_engine,
    expected_labels,
    segment_ids,
    segment_mask,
    tumour_array,
)


def _stand_ins() -> dict:
    base = types.ModuleType("slicer.ScriptedLoadableModule")

    class ScriptedLoadableModule:
        def __init__(self, parent):
            self.parent = parent

    class ScriptedLoadableModuleWidget:
        def __init__(self, parent=None):
            self.parent = parent

    class ScriptedLoadableModuleLogic:
        def __init__(self, parent=None):
            pass

    class ScriptedLoadableModuleTest:
        pass

    for cls in (
        ScriptedLoadableModule,
        ScriptedLoadableModuleWidget,
        ScriptedLoadableModuleLogic,
        ScriptedLoadableModuleTest,
    ):
        setattr(base, cls.__name__, cls)
    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    i18n.translate = lambda context, text: text
    wrapper = types.ModuleType("slicer.parameterNodeWrapper")
    wrapper.parameterNodeWrapper = lambda cls: cls
    return {
        "slicer.ScriptedLoadableModule": base,
        "slicer.i18n": i18n,
        "slicer.parameterNodeWrapper": wrapper,
        "qt": types.ModuleType("qt"),
    }


@pytest.fixture
def app():
    from trame_slicer.core import SlicerApp

    return SlicerApp()


class Application:
    """What the module uses of slicer.app: its temporary folder, and signals it connects to."""

    def __init__(self, temporary_path: str) -> None:
        self.temporaryPath = temporary_path
        self.connections = []

    def connect(self, signal, slot) -> None:
        self.connections.append((signal, slot))


@pytest.fixture
def module(app, monkeypatch, tmp_path):
    import slicer

    for name, stand_in in _stand_ins().items():
        monkeypatch.setitem(sys.modules, name, stand_in)
    modules = types.SimpleNamespace(
        segmentations=types.SimpleNamespace(logic=lambda: app.segmentations_logic),
        volumes=types.SimpleNamespace(logic=lambda: app.volumes_logic),
    )
    monkeypatch.setattr(slicer, "mrmlScene", app.scene, raising=False)
    monkeypatch.setattr(slicer, "modules", modules, raising=False)
    monkeypatch.setattr(slicer, "dicomDatabase", None, raising=False)
    monkeypatch.setattr(slicer, "app", Application(str(tmp_path / "SlicerTemp")), raising=False)
    # Slicer's own environment differs from the one it started with (its launcher adds to it).
    monkeypatch.setenv("MSTKD_TEST_MARKER", "Slicer's own")
    startup = {**dict(__import__("os").environ), "MSTKD_TEST_MARKER": "at startup"}
    monkeypatch.setattr(slicer.util, "startupEnvironment", lambda: dict(startup))
    monkeypatch.setattr(slicer.util, "WaitCursor", contextlib.nullcontext)
    monkeypatch.delitem(sys.modules, "MSTKDSegment", raising=False)
    module = importlib.import_module("MSTKDSegment")
    yield module
    if module._warmEngine is not None:
        module._warmEngine.close()
    sys.modules.pop("MSTKDSegment", None)


def test_the_engine_runs_warm_in_slicers_startup_environment_and_temporary_folder(module):
    import slicer

    logic = module.MSTKDSegmentLogic()
    assert isinstance(logic.engine, module.EngineService)
    assert logic.engine.command[-2:] == ["mstkd", "serve"]
    assert logic.engine.env["MSTKD_TEST_MARKER"] == "at startup"
    assert logic.lib.work_folder == slicer.app.temporaryPath
    assert module.MSTKDSegmentLogic().engine is logic.engine  # one engine for the session...
    assert ("aboutToQuit()", logic.engine.close) in slicer.app.connections  # ...ended when Slicer quits


def test_the_console_call_segments_and_returns_the_segmentation(app, module, monkeypatch):
    logic = module.MSTKDSegmentLogic(engine=double_engine("child"))
    assert logic.lib.scene is app.scene
    monkeypatch.setattr(logic, "ensureDependencies", lambda *args, **kwargs: True)
    flair = add_volume(app.scene, "FLAIR", tumour_array() // 2)
    t2 = add_volume(app.scene, "T2", tumour_array())

    seg = logic.segment({"flair": flair, "t2": t2}, model="demo")

    assert seg.IsA("vtkMRMLSegmentationNode")
    assert segment_ids(seg) == ["MSTKD_NCR", "MSTKD_ED", "MSTKD_ET"]
    # Without T1Gd the reference is FLAIR (the engine's preference order).
    np.testing.assert_array_equal(
        segment_mask(seg, "MSTKD_ED", flair), expected_labels(tumour_array() // 2)["ED"]
    )
    assert seg.GetAttribute("MSTKD.Sequences") == "flair,t2"


def test_dependencies_that_are_present_need_neither_pytorch_utils_nor_pip(module, monkeypatch):
    import slicer

    def refuse(*args, **kwargs):
        raise AssertionError("nothing is to be installed")

    monkeypatch.setattr(slicer.util, "pip_install", refuse)
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", refuse)
    logic = module.MSTKDSegmentLogic()
    assert logic.ensureDependencies(askConfirmation=True, phantom=True) is True
    # PyTorch is installed here: no PyTorchUtils (which exists only in Slicer) is needed to know it.
    assert logic.ensureDependencies(askConfirmation=True) is True
    assert module.pythonSlicerExecutable() == sys.executable  # no PythonSlicer here


def test_load_folder_takes_nifti_cases_and_dicom_descriptions_need_a_database(app, module, tmp_path):
    import SimpleITK as sitk

    for sequence in ("t1", "t2"):
        sitk.WriteImage(
            sitk.GetImageFromArray(tumour_array((6, 7, 8))), str(tmp_path / f"caseZ_{sequence}.nrrd")
        )
    nodes = module.MSTKDSegmentLogic().loadFolder(str(tmp_path))
    assert list(nodes) == ["t1", "t2"]
    assert module.MSTKDSegmentLogic.dicomSeriesDescriptions(nodes["t1"]) == []  # no DICOM database
    assert isinstance(module.MSTKDSegmentLogic().modelChoices(), list)
