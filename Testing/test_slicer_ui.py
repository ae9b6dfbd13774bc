"""The module's panel (.ui) loaded off-screen with PySide6, checked against the code, and rendered.

Slicer's own widget classes (qMRMLNodeComboBox, ctkCollapsibleButton, ctkPathLineEdit) are not
available outside Slicer; plain Qt stand-ins take their place so that the layout renders as it
will in Slicer. Run this file as a script to refresh Resources/Screenshots/MSTKDSegment-panel.png.
"""

from __future__ import annotations

import ast
import os
import re
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
QtWidgets = pytest.importorskip("PySide6.QtWidgets")
from PySide6 import QtCore, QtGui, QtUiTools  # noqa: E402
from slicer_helpers import MODULE_DIR, ROOT  # noqa: E402

from mstkd.inference.registry import read_registry  # noqa: E402

UI_FILE = MODULE_DIR / "Resources" / "UI" / "MSTKDSegment.ui"
MODULE_FILE = MODULE_DIR / "MSTKDSegment.py"
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
    """Every `*.ui.<name>` the module's code uses."""
    return sorted(set(re.findall(r"\bui\.([A-Za-z_]\w*)", MODULE_FILE.read_text())))


def parameter_node_fields():
    """The fields of the module's parameter node class."""
    tree = ast.parse(MODULE_FILE.read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "MSTKDSegmentParameterNode":
            return {item.target.id for item in node.body if isinstance(item, ast.AnnAssign)}
    raise AssertionError("MSTKDSegmentParameterNode not found")


def render(panel, path: Path) -> Path:
    """Show the panel as during a run on a FLAIR + T1Gd + T2 exam, and save it as a PNG."""
    combos = {
        "flairSelector": "BraTS-GLI-00042_flair",
        "t1Selector": None,
        "t1ceSelector": "BraTS-GLI-00042_t1ce",
        "t2Selector": "BraTS-GLI-00042_t2",
        "outputSegmentationSelector": None,
    }
    for name, text in combos.items():
        if text:
            child(panel, name).insertItem(0, text)
            child(panel, name).setCurrentIndex(0)
    child(panel, "referenceComboBox").addItems(["Automatic (T1Gd)", "FLAIR: BraTS-GLI-00042_flair"])
    demo = next(entry for entry in read_registry() if entry.name == "demo")
    child(panel, "modelComboBox").addItems([demo.name, "Model file..."])
    child(panel, "modelDescriptionLabel").setText(demo.description)
    child(panel, "modelPathLabel").hide()
    child(panel, "modelPathLineEdit").hide()
    child(panel, "inputsWarningLabel").hide()
    child(panel, "nestedRegionsCheckBox").setChecked(True)
    apply = child(panel, "applyButton")
    apply.setEnabled(True)
    apply.setText("Cancel")
    child(panel, "progressBar").setValue(70)
    child(panel, "statusLabel").setText("infer: sliding window 5 of 8 (about 1 s left)")
    child(panel, "resultLabel").setText("")
    child(panel, "logTextEdit").setPlainText(
        "Loaded FLAIR, T1Gd, T2.\n"
        "preflight: 3 sequences; T2 is on another grid: registering it to T1Gd\n"
        f"model: demo (sha256 {demo.sha256[:8]}...)\n"
        "infer: sliding window 5 of 8"
    )
    panel.resize(PANEL_WIDTH, panel.sizeHint().height())
    panel.show()
    application().processEvents()
    image = panel.grab()
    path.parent.mkdir(parents=True, exist_ok=True)
    assert image.save(str(path)), f"could not write {path}"
    return path


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


def test_the_panel_renders(tmp_path):
    path = render(load_panel(), tmp_path / "panel.png")
    image = QtGui.QImage(str(path))
    assert image.width() >= PANEL_WIDTH and 500 < image.height() < 1100


if __name__ == "__main__":
    print(render(load_panel(), SCREENSHOT))
    sys.exit(0)
