"""MSTKD brain-tumour segmentation: the Slicer module (a thin shell over MSTKDSegmentLib and mstkd).

The widget is the only code that uses qt/ctk; the logic facade wires slicer.mrmlScene and the
module logics into MSTKDSegmentLib, which does all the work (and is tested outside Slicer).
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import sys
import traceback
from pathlib import Path
from typing import List, Mapping, Optional

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

# MSTKDSegmentLib makes the engine (mstkd) importable, so the engine's names come through it.
from MSTKDSegmentLib import (
    BRAIN_EXTRACTION_CHOICES,
    DEFAULT_BRAIN_EXTRACTION,
    DEFAULT_DEVICE,
    DEFAULT_MODEL,
    DEVICE_CHOICES,
    DISPLAY_NAMES,
    PHANTOM_REQUIREMENTS,
    SEGMENT_REQUIREMENTS,
    SEQUENCES,
    SYNTHETIC_SHAPE,
    TORCH_VERSION_FLOOR,
    MSTKDError,
    Progress,
    SegmentationLogic,
    SegmentationRequest,
    SequenceMap,
    assign_sequences,
    choose_reference,
    duplicate_inputs,
    format_duration,
    is_dicom_folder,
    load_dicom_study,
    missing_requirements,
    model_choices,
    read_volumes_table,
    sequence_map,
)

SYNTHETIC_CASE_NAME = "MSTKD synthetic brain tumour"


#
# Module
#


class MSTKDSegment(ScriptedLoadableModule):
    """Module description and the synthetic case in Sample Data."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("MSTKD Brain Tumour Segmentation")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["MSTKDSegment contributors"]
        self.parent.helpText = _(
            "Segments brain tumours (necrotic core, oedema, enhancing tumour) from whatever MRI sequences "
            "an exam has: any of FLAIR, T1, T1Gd (T1ce) and T2. Load an exam, check the sequences the module "
            "recognised, choose a model and click Segment. The result is an editable segmentation on the "
            "reference volume's grid with SNOMED terminology, and a table of region volumes in mL. "
            "Research use only: not for clinical decisions."
        )
        self.parent.acknowledgementText = _(
            "Implements MST-KDNet (multi-scale transformer knowledge distillation) and MAG-MS for "
            "segmentation with missing MRI sequences."
        )
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """Add the synthetic case to the Sample Data module (generated on the spot, nothing is downloaded)."""
    import SampleData

    iconsPath = os.path.join(os.path.dirname(__file__), "Resources", "Icons")
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="Brain tumour (MSTKD)",
        sampleName=SYNTHETIC_CASE_NAME,
        uris="mstkd://synthetic-case",
        fileNames="MSTKDSyntheticCase.nrrd",
        thumbnailFileName=os.path.join(iconsPath, "MSTKDSegment.png"),
        customDownloader=lambda source: MSTKDSegmentLogic().loadSyntheticCase(),
    )


#
# Parameter node
#


@parameterNodeWrapper
class MSTKDSegmentParameterNode:
    """The panel's state, saved with the scene."""

    flairVolume: Optional[vtkMRMLScalarVolumeNode]
    t1Volume: Optional[vtkMRMLScalarVolumeNode]
    t1ceVolume: Optional[vtkMRMLScalarVolumeNode]
    t2Volume: Optional[vtkMRMLScalarVolumeNode]
    outputSegmentation: Optional[vtkMRMLSegmentationNode]
    nestedRegions: bool = False
    show3D: bool = True
    reference: str = ""
    model: str = ""
    modelFile: str = ""
    device: str = DEFAULT_DEVICE
    brainExtraction: str = DEFAULT_BRAIN_EXTRACTION
    brainMask: bool = False


#
# Widget
#


class MSTKDSegmentWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel: inputs, model, output, Segment/Cancel, progress and log."""

    MODEL_FILE_ITEM = "__file__"

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._run = None
        self._lastStatus = ""
        self._timer = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/MSTKDSegment.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = MSTKDSegmentLogic()
        self.selectors = {
            "flair": self.ui.flairSelector,
            "t1": self.ui.t1Selector,
            "t1ce": self.ui.t1ceSelector,
            "t2": self.ui.t2Selector,
        }
        self._timer = qt.QTimer()
        self._timer.setInterval(200)
        self._timer.connect("timeout()", self.onTimer)
        self.ui.logCollapsibleButton.collapsed = True
        self.ui.inputsWarningLabel.hide()
        self.ui.progressBar.hide()
        self.populateModels()

        self.ui.loadCaseButton.connect("clicked(bool)", self.onLoadCase)
        self.ui.loadSampleButton.connect("clicked(bool)", self.onLoadSample)
        self.ui.assignButton.connect("clicked(bool)", self.onAssignFromNames)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.referenceComboBox.connect("currentIndexChanged(int)", self.onReferenceChanged)
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self.onModelChanged)
        self.ui.modelPathLineEdit.connect("currentPathChanged(QString)", self.onModelFileChanged)
        self.ui.deviceComboBox.connect("currentIndexChanged(int)", self.onDeviceChanged)
        self.ui.brainExtractionComboBox.connect("currentIndexChanged(int)", self.onBrainExtractionChanged)
        for selector in self.selectors.values():
            selector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateGuiFromInputs)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.NodeAddedEvent, self.onNodeAdded)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.cancelRun()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(
                self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGuiFromParameterNode
            )

    def onSceneStartClose(self, caller, event) -> None:
        self.cancelRun()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    # Parameter node

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not any(self.inputs().values()):
            self.assignVolumes(slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode"), replace=False)

    def setParameterNode(self, parameterNode: Optional[MSTKDSegmentParameterNode]) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(
                self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGuiFromParameterNode
            )
        self._parameterNode = parameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(
                self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGuiFromParameterNode
            )
        self.updateGuiFromParameterNode()

    def updateGuiFromParameterNode(self, caller=None, event=None) -> None:
        if not self._parameterNode:
            return
        parameters = self._parameterNode
        self._selectData(
            self.ui.deviceComboBox,
            DEVICE_CHOICES.index(parameters.device) if parameters.device in DEVICE_CHOICES else 0,
        )
        self._selectData(
            self.ui.brainExtractionComboBox,
            BRAIN_EXTRACTION_CHOICES.index(parameters.brainExtraction)
            if parameters.brainExtraction in BRAIN_EXTRACTION_CHOICES
            else 0,
        )
        modelIndex = self.ui.modelComboBox.findData(parameters.model) if parameters.model else -1
        if parameters.modelFile and not parameters.model:
            modelIndex = self.ui.modelComboBox.findData(self.MODEL_FILE_ITEM)
        self._selectData(self.ui.modelComboBox, max(modelIndex, 0))
        self.updateModelDescription()
        if self.ui.modelPathLineEdit.currentPath != parameters.modelFile:
            self.ui.modelPathLineEdit.currentPath = parameters.modelFile
        self.updateGuiFromInputs()

    @staticmethod
    def _selectData(comboBox, index: int) -> None:
        if comboBox.currentIndex != index:
            wasBlocked = comboBox.blockSignals(True)
            comboBox.currentIndex = index
            comboBox.blockSignals(wasBlocked)

    def inputs(self) -> SequenceMap:
        """The volumes chosen, by sequence."""
        if not self._parameterNode:
            return SequenceMap({})
        return sequence_map({s: getattr(self._parameterNode, f"{s}Volume") for s in SEQUENCES})

    def updateGuiFromInputs(self, *args) -> None:
        """Reference choices, duplicate warning, model widgets and the Segment button's state."""
        chosen = self.inputs()
        self.updateReferenceChoices(chosen)
        warnings = duplicate_inputs(chosen)
        self.ui.inputsWarningLabel.text = "\n".join(warnings)
        self.ui.inputsWarningLabel.visible = bool(warnings)
        isFile = self.ui.modelComboBox.currentData == self.MODEL_FILE_ITEM
        self.ui.modelPathLineEdit.visible = isFile
        self.ui.modelPathLabel.visible = isFile
        self.updateApplyButton()

    def updateReferenceChoices(self, chosen: SequenceMap) -> None:
        combo = self.ui.referenceComboBox
        wanted = self._parameterNode.reference if self._parameterNode else ""
        automatic = choose_reference(chosen) if chosen else None
        wasBlocked = combo.blockSignals(True)
        combo.clear()
        combo.addItem(
            _("Automatic ({name})").format(name=DISPLAY_NAMES[automatic]) if automatic else _("Automatic"), ""
        )
        for sequence, node in chosen.items():
            combo.addItem(f"{DISPLAY_NAMES[sequence]}: {node.GetName()}", sequence)
        combo.currentIndex = max(combo.findData(wanted), 0)
        combo.blockSignals(wasBlocked)

    def updateApplyButton(self) -> None:
        button = self.ui.applyButton
        if self._run is not None:
            button.text = _("Cancel")
            button.toolTip = _("Stop the segmentation; the scene stays as it was.")
            button.enabled = True
            return
        button.text = _("Segment")
        chosen = self.inputs()
        model = self.selectedModel()
        if not chosen:
            button.enabled = False
            button.toolTip = _("Choose at least one sequence (FLAIR, T1, T1Gd or T2), or load a case.")
        elif not model:
            button.enabled = False
            button.toolTip = _("Choose a model, or a model file.")
        else:
            button.enabled = True
            names = " + ".join(DISPLAY_NAMES[s] for s in chosen)
            button.toolTip = _("Segment the tumour from {sequences} with the model '{model}'.").format(
                sequences=names, model=os.path.basename(model)
            )

    # Models and device

    def populateModels(self) -> None:
        combo = self.ui.modelComboBox
        wasBlocked = combo.blockSignals(True)
        combo.clear()
        for choice in self.logic.modelChoices():
            combo.addItem(choice.name, choice.name)
            combo.setItemData(combo.count - 1, choice.description or choice.intended_use, qt.Qt.ToolTipRole)
        combo.addItem(_("Model file..."), self.MODEL_FILE_ITEM)
        combo.blockSignals(wasBlocked)
        self.onModelChanged()

    def selectedModel(self) -> str:
        """The model name, or the model file path, to pass to the engine ('' when none)."""
        data = self.ui.modelComboBox.currentData
        if data == self.MODEL_FILE_ITEM:
            return self.ui.modelPathLineEdit.currentPath.strip()
        return data or ""

    def updateModelDescription(self) -> None:
        combo = self.ui.modelComboBox
        text = combo.itemData(combo.currentIndex, qt.Qt.ToolTipRole) or ""
        if combo.currentData == self.MODEL_FILE_ITEM:
            text = _("A model file exported by mstkd train; its SHA-256 is recorded with the result.")
        self.ui.modelDescriptionLabel.text = text

    def onModelChanged(self, index=None) -> None:
        data = self.ui.modelComboBox.currentData
        self.updateModelDescription()
        if self._parameterNode and data is not None:
            self._parameterNode.model = "" if data == self.MODEL_FILE_ITEM else data
        self.updateGuiFromInputs()

    def onModelFileChanged(self, path) -> None:
        if self._parameterNode:
            self._parameterNode.modelFile = path
        self.updateApplyButton()

    def onDeviceChanged(self, index) -> None:
        if self._parameterNode and 0 <= index < len(DEVICE_CHOICES):
            self._parameterNode.device = DEVICE_CHOICES[index]

    def onBrainExtractionChanged(self, index) -> None:
        if self._parameterNode and 0 <= index < len(BRAIN_EXTRACTION_CHOICES):
            self._parameterNode.brainExtraction = BRAIN_EXTRACTION_CHOICES[index]

    def onReferenceChanged(self, index) -> None:
        if self._parameterNode and index >= 0:
            self._parameterNode.reference = self.ui.referenceComboBox.itemData(index) or ""

    # Loading data and assigning sequences

    @vtk.calldata_type(vtk.VTK_OBJECT)
    def onNodeAdded(self, caller, event, node) -> None:
        if isinstance(node, vtkMRMLScalarVolumeNode) and not node.IsA("vtkMRMLLabelMapVolumeNode"):
            # Loaders name a node (and attach its DICOM attributes) after adding it: look once they are done.
            qt.QTimer.singleShot(0, lambda: self.assignVolumes([node], replace=False))

    def assignVolumes(self, nodes, replace: bool) -> None:
        """Put volumes into the selectors of the sequences their names/series descriptions name."""
        if not self._parameterNode or self._run is not None:
            return
        nodes = [n for n in nodes if n is not None and n.GetScene() is slicer.mrmlScene]
        found = assign_sequences(nodes, self.logic.dicomSeriesDescriptions)
        for sequence, node in found.items():
            current = getattr(self._parameterNode, f"{sequence}Volume")
            if replace or current is None:
                setattr(self._parameterNode, f"{sequence}Volume", node)
                self.log(
                    _("{sequence}: {name}").format(sequence=DISPLAY_NAMES[sequence], name=node.GetName())
                )

    def onAssignFromNames(self) -> None:
        volumes = [
            n
            for n in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")
            if not n.IsA("vtkMRMLLabelMapVolumeNode")
        ]
        for sequence in SEQUENCES:
            setattr(self._parameterNode, f"{sequence}Volume", None)
        self.assignVolumes(volumes, replace=True)

    def onLoadCase(self) -> None:
        settings = qt.QSettings()
        folder = qt.QFileDialog.getExistingDirectory(
            slicer.util.mainWindow(),
            _("Choose the folder of one exam"),
            settings.value("MSTKDSegment/LastFolder", ""),
        )
        if not folder:
            return
        settings.setValue("MSTKDSegment/LastFolder", folder)
        with slicer.util.WaitCursor():
            nodes = self.runWithErrorDisplay(_("Could not load the case."), self.logic.loadFolder, folder)
        if nodes:
            self.useVolumes(nodes)
        for line in self.logic.lastSeriesChoice.describe() if self.logic.lastSeriesChoice else ():
            self.log(line)

    def onLoadSample(self) -> None:
        with slicer.util.WaitCursor():
            nodes = self.runWithErrorDisplay(
                _("Could not generate the synthetic case."), self.logic.loadSyntheticCase
            )
        if nodes:
            self.useVolumes(nodes)

    def useVolumes(self, nodes: SequenceMap) -> None:
        """Select a loaded exam's volumes (and only those) and show its reference volume."""
        for sequence in SEQUENCES:
            setattr(self._parameterNode, f"{sequence}Volume", nodes.get(sequence))
        self.log(_("Loaded {sequences}.").format(sequences=", ".join(DISPLAY_NAMES[s] for s in nodes)))
        if nodes:
            slicer.util.setSliceViewerLayers(background=nodes[choose_reference(nodes)], fit=True)

    # Running

    def onApplyButton(self) -> None:
        if self._run is not None:
            self.cancelRun()
            self.ui.statusLabel.text = _("Cancelled; the scene was left as it was.")
            return
        parameters = self._parameterNode
        request = SegmentationRequest(
            inputs=self.inputs(),
            model=self.selectedModel(),
            device=parameters.device,
            reference=self.ui.referenceComboBox.currentData or None,
            segmentation=parameters.outputSegmentation,
            nested=parameters.nestedRegions,
            show_3d=parameters.show3D,
            brain_extraction=parameters.brainExtraction,
            brain_mask=parameters.brainMask,
        )
        with slicer.util.WaitCursor():
            if not self.runWithErrorDisplay(
                _("Could not prepare the segmentation."), self.logic.ensureDependencies
            ):
                return
            self._run = self.runWithErrorDisplay(
                _("Could not start the segmentation."), self.logic.start, request
            )
        if self._run is None:
            return
        self.ui.logTextEdit.clear()
        self.ui.progressBar.value = 0
        self.ui.progressBar.show()
        self.ui.resultLabel.text = ""
        self._lastStatus = ""
        self.setStatus(_("Starting..."))
        self.updateApplyButton()
        self._timer.start()

    def onTimer(self) -> None:
        run = self._run
        if run is None:
            self._timer.stop()
            return
        for event in run.poll():
            if isinstance(event, Progress):
                self.ui.progressBar.value = int(round(100 * event.fraction))
                if event.message and event.message != self._lastStatus:
                    self.log(f"{event.stage}: {event.message}")
                    self._lastStatus = event.message
            else:
                self.log(event)
        if run.progress is not None:
            remaining = run.remaining_s()
            left = (
                _(" (about {time} left)").format(time=format_duration(remaining))
                if remaining is not None
                else ""
            )
            self.setStatus(f"{run.progress.stage}: {run.progress.message}{left}")
        if run.finished:
            self._timer.stop()
            self.onRunFinished()

    def onRunFinished(self) -> None:
        run, self._run = self._run, None
        try:
            with slicer.util.WaitCursor():
                segmentation = run.finish()
        except MSTKDError as error:
            self.ui.progressBar.hide()
            self.setStatus(_("Segmentation failed."))
            self.log(str(error))
            slicer.util.errorDisplay(str(error), windowTitle=_("Segmentation failed"))
        except Exception as error:
            logging.error(traceback.format_exc())
            self.ui.progressBar.hide()
            self.setStatus(_("Segmentation failed."))
            slicer.util.errorDisplay(
                _("Unexpected error: {error}").format(error=error), detailedText=traceback.format_exc()
            )
        else:
            self.showResult(segmentation, run)
        finally:
            self.updateApplyButton()

    def showResult(self, segmentation, run) -> None:
        self.ui.progressBar.value = 100
        self._parameterNode.outputSegmentation = segmentation
        reference = run.inputs[run.reference]
        slicer.util.setSliceViewerLayers(background=reference)
        for note in run.notes:
            self.log(note)
        volumes = read_volumes_table(segmentation)
        self.ui.resultLabel.text = "   ".join(f"{key} {volume:.1f} mL" for key, volume in volumes.items())
        self.setStatus(
            _("Done: '{name}' ({model}, {sequences}).").format(
                name=segmentation.GetName(),
                model=segmentation.GetAttribute("MSTKD.ModelName") or "",
                sequences=segmentation.GetAttribute("MSTKD.Sequences") or "",
            )
        )

    def cancelRun(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        run, self._run = self._run, None
        if run is not None:
            run.cancel()
            self.ui.progressBar.hide()
            self.log(_("Cancelled."))
        if hasattr(self, "ui"):
            self.updateApplyButton()

    # Messages

    def setStatus(self, text: str) -> None:
        self.ui.statusLabel.text = text
        slicer.util.showStatusMessage(text, 3000)

    def log(self, text: str) -> None:
        self.ui.logTextEdit.appendPlainText(text)

    def runWithErrorDisplay(self, title: str, function, *args):
        """Call a function; a user error shows its message, anything else the traceback too. None on error."""
        try:
            return function(*args)
        except MSTKDError as error:
            self.log(str(error))
            slicer.util.errorDisplay(str(error), windowTitle=title)
        except Exception as error:
            logging.error(traceback.format_exc())
            slicer.util.errorDisplay(f"{title}\n{error}", detailedText=traceback.format_exc())
        return None


#
# Logic
#


def pythonSlicerExecutable() -> str:
    """The Python that runs the engine's child process: PythonSlicer (same packages as Slicer)."""
    found = shutil.which("PythonSlicer")
    if found:
        return found
    candidate = Path(sys.executable).with_name("PythonSlicer" + (".exe" if os.name == "nt" else ""))
    return str(candidate) if candidate.is_file() else sys.executable


class MSTKDSegmentLogic(ScriptedLoadableModuleLogic):
    """The module's logic for the widget and the Python console; the work is done by MSTKDSegmentLib.

    Example::

        logic = slicer.util.getModuleLogic("MSTKDSegment")  # or MSTKDSegmentLogic()
        seg = logic.segment({"flair": flairNode, "t2": t2Node}, model="demo")
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.lib = SegmentationLogic(
            slicer.mrmlScene,
            slicer.modules.segmentations.logic(),
            slicer.modules.volumes.logic(),
            python=pythonSlicerExecutable(),
        )
        self.lastSeriesChoice = None  # how the last DICOM study's series were chosen

    def getParameterNode(self):
        return MSTKDSegmentParameterNode(super().getParameterNode())

    # Segmenting

    def segment(
        self,
        inputs: Mapping[str, object],
        model: str = DEFAULT_MODEL,
        device: str = DEFAULT_DEVICE,
        reference: Optional[str] = None,
        segmentation=None,
        nested: bool = False,
        show3D: bool = True,
        timeoutSeconds: Optional[float] = None,
    ):
        """Segment volumes keyed by sequence ('flair', 't1', 't1ce' or 'T1Gd', 't2'); returns the result."""
        self.ensureDependencies()
        return self.lib.segment(
            inputs,
            model=model,
            device=device,
            reference=reference,
            segmentation=segmentation,
            nested=nested,
            show_3d=show3D,
            timeout_s=timeoutSeconds,
            on_event=self._logEvent,
        )

    def start(self, request):
        """Start a segmentation in the background; returns the SegmentationRun to poll."""
        return self.lib.start(request)

    @staticmethod
    def _logEvent(event) -> None:
        logging.info(f"MSTKDSegment: {getattr(event, 'message', event)}")

    def modelChoices(self) -> List:
        return model_choices()

    # Loading data

    def loadFolder(self, folder: str) -> SequenceMap:
        """Load an exam from a folder: a DICOM study, or a case's NIfTI/NRRD files (any BraTS/FeTS layout)."""
        self.lastSeriesChoice = None
        if is_dicom_folder(folder):
            return self.loadDicomFolder(folder)
        return self.lib.load_case(folder)[1]

    def loadDicomFolder(self, folder: str, overrides=None) -> SequenceMap:
        """Import a DICOM folder into the DICOM database and load its FLAIR, T1, T1Gd and T2 series.

        The series are chosen from their tags (see MSTKDSegmentLib.dicom_study); `overrides` maps a
        sequence to the series UID to use instead, e.g. {"t1ce": "1.2.3..."} (None leaves it out).
        Uses the application's DICOM database when one is open (so that DICOM SEG export finds the
        study), else a temporary one.
        """
        from DICOMLib import DICOMUtils

        database = slicer.dicomDatabase
        if database is not None and database.isOpen:
            return self._loadDicomSeries(database, folder, overrides)
        with DICOMUtils.TemporaryDICOMDatabase() as temporary:
            return self._loadDicomSeries(temporary, folder, overrides)

    def _loadDicomSeries(self, database, folder: str, overrides) -> SequenceMap:
        """Import the folder, load the chosen series; `lastSeriesChoice` keeps what was chosen and why."""
        from DICOMLib import DICOMUtils

        DICOMUtils.importDicom(folder, database)
        found, self.lastSeriesChoice = load_dicom_study(
            slicer.mrmlScene, database, folder, lambda uid: DICOMUtils.loadSeriesByUID([uid]), overrides
        )
        for line in self.lastSeriesChoice.describe():
            logging.info(line)
        return found

    @staticmethod
    def dicomSeriesDescriptions(node, database=None) -> List[str]:
        """The DICOM series description of a volume loaded from DICOM, if the database knows it."""
        database = database or slicer.dicomDatabase
        uids = (node.GetAttribute("DICOM.instanceUIDs") or "").split()
        if not uids or database is None or not database.isOpen:
            return []
        path = database.fileForInstance(uids[0])
        return [database.fileValue(path, "0008,103E")] if path else []

    def loadSyntheticCase(self, seed: int = 0, shape=None) -> SequenceMap:
        """Generate a synthetic brain-tumour exam (mstkd.phantom) in the scene; returns its volumes."""
        self.ensureDependencies(phantom=True)
        return self.lib.load_phantom(seed, shape or SYNTHETIC_SHAPE)

    # Dependencies

    def ensureDependencies(self, askConfirmation: bool = True, phantom: bool = False) -> bool:
        """Install what the engine needs (PyTorch via the PyTorch extension, the rest with pip), asking first.

        Raises MSTKDError when the user declines or the PyTorch extension is missing.
        """
        if not phantom:
            self._ensureTorch(askConfirmation)
        missing = missing_requirements(PHANTOM_REQUIREMENTS if phantom else SEGMENT_REQUIREMENTS)
        if not missing:
            return True
        question = _(
            "MSTKD Segmentation needs these Python packages, which will now be downloaded and installed "
            "(this can take a few minutes):\n\n{packages}"
        ).format(packages="\n".join(missing))
        if askConfirmation and not slicer.util.confirmOkCancelDisplay(question):
            raise MSTKDError(
                _("The required Python packages were not installed: {packages}.").format(
                    packages=", ".join(missing)
                )
            )
        with slicer.util.WaitCursor():
            slicer.util.pip_install(" ".join(missing))
        importlib.invalidate_caches()
        return True

    @staticmethod
    def _ensureTorch(askConfirmation: bool) -> None:
        try:
            import PyTorchUtils
        except ModuleNotFoundError:
            raise MSTKDError(
                _(
                    "This module needs the PyTorch extension: install 'PyTorch' with the Extensions Manager, "
                    "restart Slicer and try again."
                )
            ) from None
        torchLogic = PyTorchUtils.PyTorchUtilsLogic()
        if torchLogic.torchInstalled():
            return
        torch = torchLogic.installTorch(
            askConfirmation=askConfirmation, torchVersionRequirement=f">={TORCH_VERSION_FLOOR}"
        )
        if torch is None:
            raise MSTKDError(_("PyTorch is required and was not installed; see the PyTorch Utils module."))


#
# Test
#


class MSTKDSegmentTest(ScriptedLoadableModuleTest):
    """Inside Slicer: a synthetic case through the whole path (engine child process included)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SyntheticCaseEndToEnd()
        self.setUp()
        self.test_WidgetTracksInputs()

    def test_SyntheticCaseEndToEnd(self):
        self.delayDisplay("Generating a synthetic case")
        logic = MSTKDSegmentLogic()
        logic.ensureDependencies(askConfirmation=False, phantom=True)
        logic.ensureDependencies(askConfirmation=False)
        nodes = logic.loadSyntheticCase(seed=1, shape=(64, 64, 48))
        self.assertEqual(sorted(nodes), sorted(SEQUENCES))
        models = [choice.name for choice in logic.modelChoices()]
        if not models:
            self.delayDisplay("No model in the registry: the segmentation part is skipped")
            return

        self.delayDisplay(f"Segmenting FLAIR + T1Gd with {models[0]}")
        segmentation = logic.segment(
            {"flair": nodes["flair"], "T1Gd": nodes["t1ce"]}, model=models[0], device="cpu", nested=True
        )
        ids = [
            segmentation.GetSegmentation().GetNthSegmentID(i)
            for i in range(segmentation.GetSegmentation().GetNumberOfSegments())
        ]
        self.assertEqual(ids, ["MSTKD_NCR", "MSTKD_ED", "MSTKD_ET", "MSTKD_WT", "MSTKD_TC"])
        role = segmentation.GetReferenceImageGeometryReferenceRole()
        self.assertEqual(segmentation.GetNodeReference(role), nodes["t1ce"])
        self.assertEqual(segmentation.GetAttribute("MSTKD.Sequences"), "flair,t1ce")
        self.assertTrue(segmentation.GetAttribute("MSTKD.ModelSHA256"))
        self.assertEqual(list(read_volumes_table(segmentation)), ["NCR", "ED", "ET", "TC", "WT"])

        self.delayDisplay("Re-running keeps segment IDs and the user's segments")
        userSegment = segmentation.GetSegmentation().AddEmptySegment("", "My notes")
        again = logic.segment(
            {"flair": nodes["flair"], "t1ce": nodes["t1ce"]},
            model=models[0],
            device="cpu",
            segmentation=segmentation,
        )
        self.assertIs(again, segmentation)
        self.assertIsNotNone(segmentation.GetSegmentation().GetSegment(userSegment))
        self.assertIsNone(segmentation.GetSegmentation().GetSegment("MSTKD_WT"))
        self.delayDisplay("Test passed")

    def test_WidgetTracksInputs(self):
        slicer.util.selectModule("MSTKDSegment")
        widget = slicer.modules.MSTKDSegmentWidget
        self.assertFalse(widget.ui.applyButton.enabled)
        volume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "AX T2 FSE")
        slicer.app.processEvents()
        self.assertIs(widget.ui.t2Selector.currentNode(), volume)
        widget.ui.flairSelector.setCurrentNode(volume)
        self.assertTrue(widget.ui.inputsWarningLabel.visible)
        self.delayDisplay("Test passed")
