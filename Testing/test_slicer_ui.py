"""The module's panel (.ui) loaded off-screen with PySide6, checked against the code, and rendered.

Slicer's own widget classes (qMRMLNodeComboBox, ctkCollapsibleButton, ctkPathLineEdit) are not
available outside Slicer; plain Qt stand-ins take their place so that the layout renders as it
will in Slicer; the module's own renderer draws MSTKDSegmentLib.PanelState's view on them. Run this file
as a script to refresh Resources/Screenshots/MSTKDSegment-panel.png from a real run (a BraTS-size
synthetic exam, the warm engine, the demo model).
"""

from __future__ import annotations

import ast
import os
import re
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
QtWidgets = pytest.importorskip("PySide6.QtWidgets")
from PySide6 import QtCore, QtGui, QtUiTools  # noqa: E402
from slicer_helpers import MODULE_DIR, ROOT, real_engine_logic  # noqa: E402

UI_FILE = MODULE_DIR / "Resources" / "UI" / "MSTKDSegment.ui"
MODULE_FILE = MODULE_DIR / "MSTKDSegment.py"
RENDER_FILE = MODULE_DIR / "MSTKDSegmentLib" / "render.py"
SCREENSHOT = ROOT / "Resources" / "Screenshots" / "MSTKDSegment-panel.png"
PANEL_WIDTH = 460


class NodeComboBox(QtWidgets.QComboBox):
    """Stand-in for qMRMLNodeComboBox: a combo box that accepts its designer properties."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._properties = {}

    def _get(self, name, default):
        return self._properties.get(name, default)

    def _set(self, name, value):
        self._properties[name] = value
        if name == "noneDisplay" and self.count() == 0:
            self.addItem(value)

    nodeTypes = QtCore.Property(
        list, lambda self: self._get("nodeTypes", []), lambda self, v: self._set("nodeTypes", v)
    )
    noneEnabled = QtCore.Property(
        bool, lambda self: self._get("noneEnabled", False), lambda self, v: self._set("noneEnabled", v)
    )
    noneDisplay = QtCore.Property(
        str, lambda self: self._get("noneDisplay", ""), lambda self, v: self._set("noneDisplay", v)
    )
    showChildNodeTypes = QtCore.Property(
        bool,
        lambda self: self._get("showChildNodeTypes", True),
        lambda self, v: self._set("showChildNodeTypes", v),
    )
    addEnabled = QtCore.Property(
        bool, lambda self: self._get("addEnabled", True), lambda self, v: self._set("addEnabled", v)
    )
    removeEnabled = QtCore.Property(
        bool, lambda self: self._get("removeEnabled", True), lambda self, v: self._set("removeEnabled", v)
    )
    renameEnabled = QtCore.Property(
        bool, lambda self: self._get("renameEnabled", False), lambda self, v: self._set("renameEnabled", v)
    )


class CollapsibleButton(QtWidgets.QFrame):
    """Stand-in for ctkCollapsibleButton: a header button (its 'text') above the contents."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._text = ""
        self.collapsed = False

    text = QtCore.Property(str, lambda self: self._text, lambda self, v: setattr(self, "_text", v))

    def add_header(self):
        """Put the header button on top of the contents (the loader has set the layout by now)."""
        header = QtWidgets.QPushButton(("\u25b6  " if self.collapsed else "\u25bc  ") + self._text, self)
        header.setStyleSheet("text-align: left; padding: 4px 8px;")
        layout = self.layout()
        if isinstance(layout, QtWidgets.QFormLayout):
            layout.insertRow(0, header)
        else:
            layout.insertWidget(0, header)
        layout.setContentsMargins(0, 0, 0, 4)


class PathLineEdit(QtWidgets.QWidget):
    """Stand-in for ctkPathLineEdit: a line edit with a browse button."""

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.edit = QtWidgets.QLineEdit(self)
        layout.addWidget(self.edit)
        layout.addWidget(QtWidgets.QToolButton(self, text="..."))
        self._names = []

    nameFilters = QtCore.Property(list, lambda self: self._names, lambda self, v: setattr(self, "_names", v))


STAND_INS = {
    "qMRMLNodeComboBox": NodeComboBox,
    "ctkCollapsibleButton": CollapsibleButton,
    "ctkPathLineEdit": PathLineEdit,
    "qMRMLWidget": QtWidgets.QWidget,
}


class StandInLoader(QtUiTools.QUiLoader):
    """A QUiLoader that builds the stand-ins for Slicer's widget classes."""

    def createWidget(self, class_name, parent=None, name=""):
        stand_in = STAND_INS.get(class_name)
        if stand_in is None:
            return super().createWidget(class_name, parent, name)
        widget = stand_in(parent)
        widget.setObjectName(name)
        return widget


def application():
    """The QApplication (one per process), with the light Fusion style of Slicer's default theme."""
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    app.setStyle("Fusion")
    return app


def load_panel():
    """The panel built from the .ui file."""
    application()
    stream = QtCore.QFile(str(UI_FILE))
    assert stream.open(QtCore.QFile.ReadOnly)
    try:
        panel = StandInLoader().load(stream)
    finally:
        stream.close()
    assert panel is not None, "QUiLoader could not build the panel"
    for collapsible in panel.findChildren(CollapsibleButton):
        collapsible.add_header()
    return panel


def child(panel, name):
    found = panel if panel.objectName() == name else panel.findChild(QtCore.QObject, name)
    assert found is not None, f"no widget named {name!r} in {UI_FILE.name}"
    return found


def names_used_by_the_module():
    """Every `*.ui.<name>` the module's widget and its renderer use."""
    code = MODULE_FILE.read_text() + RENDER_FILE.read_text()
    return sorted(set(re.findall(r"\bui\.([A-Za-z_]\w*)", code)))


def parameter_node_fields():
    """The fields of the module's parameter node class."""
    tree = ast.parse(MODULE_FILE.read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "MSTKDSegmentParameterNode":
            return {item.target.id for item in node.body if isinstance(item, ast.AnnAssign)}
    raise AssertionError("MSTKDSegmentParameterNode not found")


class Widgets:
    """The panel's widgets by name, as `slicer.util.childWidgetVariables` gives them to the module."""

    def __init__(self, panel) -> None:
        self._panel = panel

    def __getattr__(self, name):
        return child(self._panel, name)


def render(panel, path: Path, state, settings, log: str) -> Path:
    """Draw PanelState's view of `settings` on the panel with the module's renderer; save it as a PNG."""
    from MSTKDSegmentLib import PanelRenderer

    for sequence, node in settings.inputs.items():  # the node selectors are the parameter node's
        if node is not None:
            child(panel, f"{sequence}Selector").insertItem(0, node.GetName())
            child(panel, f"{sequence}Selector").setCurrentIndex(0)
    child(panel, "nestedRegionsCheckBox").setChecked(True)
    PanelRenderer(Widgets(panel)).render(state.view(settings))
    child(panel, "logTextEdit").setPlainText(log)
    child(panel, "logTextEdit").moveCursor(QtGui.QTextCursor.End)  # a live log shows its last lines
    panel.resize(PANEL_WIDTH, panel.sizeHint().height())
    panel.show()
    application().processEvents()
    image = panel.grab()
    path.parent.mkdir(parents=True, exist_ok=True)
    assert image.save(str(path)), f"could not write {path}"
    return path


def screenshot(path: Path) -> Path:
    """The panel during a real run: a BraTS-size synthetic exam in a real scene, the engine's device check
    and the demo model's progress in the warm engine, all through PanelState."""
    from trame_slicer.core import SlicerApp

    from MSTKDSegmentLib import PanelSettings, PanelState, Progress, SegmentationRequest, model_choices

    logic, engine = real_engine_logic(SlicerApp())
    state = PanelState(model_choices())
    nodes = logic.load_phantom(seed=42, shape=(240, 240, 155), sequences=("flair", "t1ce", "t2"))
    settings = state.new_case(PanelSettings(), nodes)
    log = [state.status]
    try:
        check = engine.check_device(*state.device_check_sent(settings))
        check.wait()
        state.device_checked(
            settings, check.reply.get("device"), check.error_message() if check.returncode else ""
        )
        request = SegmentationRequest(
            settings.chosen(), state.selected_model(settings), state.run_device(settings)
        )
        run = logic.start(request)
        state.run_started(settings, engine.ready)
        while not (run.progress and run.progress.stage == "infer" and run.progress.fraction >= 0.5):
            assert not run.finished, run.log
            for event in run.poll():
                line = state.run_event(event)
                if line and isinstance(event, Progress):
                    log.append(line)
            time.sleep(0.05)
        return render(load_panel(), path, state, settings, "\n".join(log))
    finally:
        engine.close()


def test_every_widget_the_module_uses_is_in_the_ui_file():
    panel = load_panel()
    names = names_used_by_the_module()
    assert {"applyButton", "flairSelector", "progressBar", "logTextEdit"} <= set(names)
    for name in names:
        child(panel, name)


def test_parameter_names_in_the_ui_file_are_fields_of_the_parameter_node():
    panel = load_panel()
    bound = {
        widget.property("SlicerParameterName")
        for widget in panel.findChildren(QtWidgets.QWidget)
        if widget.property("SlicerParameterName")
    }
    assert bound == {
        "flairVolume",
        "t1Volume",
        "t1ceVolume",
        "t2Volume",
        "outputSegmentation",
        "nestedRegions",
        "show3D",
        "brainMask",
    }
    assert bound <= parameter_node_fields()


def test_custom_widget_classes_are_declared_and_selectors_take_the_right_nodes():
    root = ElementTree.parse(UI_FILE).getroot()
    declared = {c.findtext("class") for c in root.iter("customwidget")}
    used = {w.get("class") for w in root.iter("widget")}
    assert {c for c in used if not c.startswith("Q")} <= declared
    types = {
        w.get("name"): w.find("property[@name='nodeTypes']/stringlist/string").text
        for w in root.iter("widget")
        if w.get("class") == "qMRMLNodeComboBox"
    }
    assert types == {
        "flairSelector": "vtkMRMLScalarVolumeNode",
        "t1Selector": "vtkMRMLScalarVolumeNode",
        "t1ceSelector": "vtkMRMLScalarVolumeNode",
        "t2Selector": "vtkMRMLScalarVolumeNode",
        "outputSegmentationSelector": "vtkMRMLSegmentationNode",
    }
    panel = load_panel()
    for name in ("flairSelector", "t1Selector", "t1ceSelector", "t2Selector"):
        assert child(panel, name).noneEnabled
    assert child(panel, "applyButton").toolTip() == "Choose at least one sequence."


def test_the_panel_renders_the_view_of_the_panel_state(tmp_path):
    pytest.importorskip("trame_slicer")
    from segment_protocol_double import DEVICE_REPORT
    from slicer_helpers import add_volume, tumour_array
    from trame_slicer.core import SlicerApp

    from MSTKDSegmentLib import PanelSettings, PanelState, Progress, model_choices

    scene = SlicerApp().scene
    nodes = {s: add_volume(scene, f"exam_{s}", tumour_array()) for s in ("flair", "t1ce")}
    state = PanelState(model_choices())
    settings = state.new_case(PanelSettings(), nodes)
    state.device_check_sent(settings)
    state.device_checked(settings, DEVICE_REPORT)
    state.run_started(settings, engine_ready=True)
    state.run_event(Progress("infer", 0.7, "window 5 of 8 (on cpu, 4 per batch)"))
    panel = load_panel()

    path = render(panel, tmp_path / "panel.png", state, settings, "infer: window 5 of 8")

    image = QtGui.QImage(str(path))
    assert image.width() >= PANEL_WIDTH and 500 < image.height() < 1100
    assert child(panel, "applyButton").text() == "Cancel"
    assert child(panel, "progressBar").value() == 70
    assert child(panel, "statusLabel").text().count("left") == 1
    assert child(panel, "deviceStatusLabel").text().startswith("Runs on: the CPU (Test CPU, 2 cores")
    models = child(panel, "modelComboBox")
    assert [models.itemText(i) for i in range(models.count())][-1] == "Model file..."
    assert not child(panel, "modelPathLineEdit").isVisibleTo(panel)
    devices = child(panel, "deviceComboBox")
    assert [devices.itemData(i) for i in range(devices.count())] == ["auto", "cpu", "cuda", "mps"]
    extraction = child(panel, "brainExtractionComboBox")
    assert [extraction.itemData(i) for i in range(extraction.count())] == [
        "auto",
        "deepbet",
        "hd-bet",
        "none",
    ]
    assert extraction.currentText() == "Automatic"
    mirroring = child(panel, "mirroringComboBox")
    assert [mirroring.itemData(i) for i in range(mirroring.count())] == ["", "none", "xyz"]
    assert mirroring.currentText() == "As the model file says"


if __name__ == "__main__":
    print(screenshot(SCREENSHOT))
    sys.exit(0)
