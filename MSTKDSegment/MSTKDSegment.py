"""MSTKD brain-tumour segmentation: the Slicer module (a thin shell over MSTKDSegmentLib and mstkd).

The widget is the only code that uses qt/ctk: it passes events to the Qt-free PanelState and draws
the views it returns. The logic facade wires slicer.mrmlScene, the module logics, the DICOM
database, pip and the warm engine into MSTKDSegmentLib, which does all the work (and is tested
outside Slicer).
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import sys
import traceback
from pathlib import Path
from typing import Dict, List, Mapping, Optional

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
    DEFAULT_BRAIN_EXTRACTION,
    DEFAULT_DEVICE,
    DEFAULT_MODEL,
    MODEL_FILE,
    SAMPLE_EXTENSION,
    SAMPLE_FILE_TYPE,
    SEQUENCES,
    SYNTHETIC_SHAPE,
    DependencyInstaller,
    DicomLoader,
    EngineService,
    MSTKDError,
    PanelRenderer,
    PanelSettings,
    PanelState,
    SegmentationLogic,
    SequenceMap,
    assign_sequences,
    child_environment,
    is_dicom_folder,
    is_mri_volume,
    model_choices,
    read_notes,
    read_sample,
    read_volumes_table,
    requirements_for,
    sample_uri,
    series_descriptions,
    serve_command,
    unmet,
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
            "reference volume's grid with SNOMED terminology, a table of region volumes in mL, and notes on "
            "how it was made. Research use only: not for clinical decisions."
        )
        self.parent.acknowledgementText = _(
            "Implements MST-KDNet (multi-scale transformer knowledge distillation) and MAG-MS for "
            "segmentation with missing MRI sequences."
        )
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """Add the synthetic case to Sample Data: a small file read by MSTKDSegmentFileReader, which generates
    the exam (nothing is downloaded); SampleData.downloadSample() takes the same path as the button."""
    import SampleData

    iconsPath = os.path.join(os.path.dirname(__file__), "Resources", "Icons")
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="Brain tumour (MSTKD)",
        sampleName=SYNTHETIC_CASE_NAME,
        uris=sample_uri(),
        fileNames=f"MSTKDSyntheticCase{SAMPLE_EXTENSION}",
        nodeNames="MSTKDSyntheticCase",
        thumbnailFileName=os.path.join(iconsPath, "MSTKDSegment.png"),
        loadFileType=SAMPLE_FILE_TYPE,
    )


class MSTKDSegmentFileReader:
    """Reads the synthetic-case file of Sample Data: generates the phantom it names into the scene."""

    def __init__(self, parent):
        self.parent = parent

    def description(self):
        return _("MSTKD synthetic brain-tumour case")

    def fileType(self):
        return SAMPLE_FILE_TYPE

    def extensions(self):
        return [_("MSTKD synthetic case (*{extension})").format(extension=SAMPLE_EXTENSION)]

    def canLoadFile(self, filePath):
        return filePath.endswith(SAMPLE_EXTENSION)

    def load(self, properties):
        try:
            seed, shape = read_sample(properties["fileName"])
            nodes = MSTKDSegmentLogic().loadSyntheticCase(seed=seed, shape=shape)
        except MSTKDError as error:  # e.g. the user declined to install what the phantom needs
            self.parent.userMessages().AddMessage(vtk.vtkCommand.ErrorEvent, str(error))
            slicer.util.errorDisplay(str(error), windowTitle=_("Synthetic case not loaded"))
            return False
        self.parent.loadedNodes = [node.GetID() for node in nodes.values()]
        return True


#
# Parameter node
#


@parameterNodeWrapper
class MSTKDSegmentParameterNode:
    """The panel's choices, saved with the scene (`model`: a registry name, or MODEL_FILE)."""

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
    mirroring: str = ""
    brainMask: bool = False


#
# Widget
#


class MSTKDSegmentWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel: it hands events to PanelState and draws what PanelState says."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.state = None
        self.renderer = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._run = None
        self._deviceCheck = None
        self._timer = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/MSTKDSegment.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = MSTKDSegmentLogic()
        self.state = PanelState(self.logic.modelChoices())
        self.renderer = PanelRenderer(self.ui)
        self._timer = qt.QTimer()
        self._timer.setInterval(200)
        self._timer.connect("timeout()", self.onTimer)
        self.ui.logCollapsibleButton.collapsed = True

        self.ui.loadCaseButton.connect("clicked(bool)", self.onLoadCase)
        self.ui.loadSampleButton.connect("clicked(bool)", self.onLoadSample)
        self.ui.assignButton.connect("clicked(bool)", self.onAssignFromNames)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.referenceComboBox.connect("currentIndexChanged(int)", self.onReferenceChanged)
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self.onModelChanged)
        self.ui.modelPathLineEdit.connect("currentPathChanged(QString)", self.onModelFileChanged)
        self.ui.deviceComboBox.connect("currentIndexChanged(int)", self.onDeviceChanged)
        self.ui.brainExtractionComboBox.connect("currentIndexChanged(int)", self.onBrainExtractionChanged)
        self.ui.mirroringComboBox.connect("currentIndexChanged(int)", self.onMirroringChanged)
        for sequence in SEQUENCES:
            getattr(self.ui, f"{sequence}Selector").connect(
                "currentNodeChanged(vtkMRMLNode*)", self.updateGui
            )
        self.ui.outputSegmentationSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateGui)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.cancelRun(warmUp=False)
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()
        # Volumes added while the panel is hidden (subtractions, resampled copies) are not inputs.
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.NodeAddedEvent, self.onNodeAdded)
        self.checkDevice()

    def exit(self) -> None:
        self.removeObserver(slicer.mrmlScene, slicer.mrmlScene.NodeAddedEvent, self.onNodeAdded)
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGui)

    def onSceneStartClose(self, caller, event) -> None:
        self.cancelRun(warmUp=False)
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    # Parameter node and the panel's state

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self.settings().chosen():
            self.assignVolumes(slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode"), replace=False)

    def setParameterNode(self, parameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGui)
        self._parameterNode = parameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGui)
            self.ui.modelPathLineEdit.currentPath = self._parameterNode.modelFile
        self.updateGui()

    def settings(self) -> PanelSettings:
        """The parameter node's choices for PanelState."""
        p = self._parameterNode
        if p is None:
            return PanelSettings()
        return PanelSettings(
            inputs={s: getattr(p, f"{s}Volume") for s in SEQUENCES},
            reference=p.reference,
            model=p.model,
            model_file=p.modelFile,
            device=p.device,
            brain_extraction=p.brainExtraction,
            mirroring=p.mirroring,
            output=p.outputSegmentation,
            nested=p.nestedRegions,
            show_3d=p.show3D,
            brain_mask=p.brainMask,
        )

    def store(self, settings: PanelSettings) -> None:
        """Write PanelState's settings back into the parameter node."""
        p = self._parameterNode
        if p is None:
            return
        for sequence in SEQUENCES:
            setattr(p, f"{sequence}Volume", settings.inputs.get(sequence))
        p.reference, p.model, p.modelFile = settings.reference, settings.model, settings.model_file
        p.device, p.brainExtraction = settings.device, settings.brain_extraction
        p.mirroring = settings.mirroring
        p.outputSegmentation = settings.output
        p.nestedRegions, p.show3D, p.brainMask = settings.nested, settings.show_3d, settings.brain_mask

    def updateGui(self, *args) -> None:
        if self.renderer is not None and self.state is not None:
            self.renderer.render(self.state.view(self.settings()))

    # Choices

    def onModelChanged(self, index) -> None:
        if index >= 0:
            self.store(self.state.choose_model(self.settings(), self.ui.modelComboBox.itemData(index)))
            self.checkDevice()

    def onModelFileChanged(self, path) -> None:
        if self._parameterNode:
            self._parameterNode.modelFile = path
            self.state.forget_device_check()
            if os.path.isfile(path):
                self.checkDevice()

    def onDeviceChanged(self, index) -> None:
        if index >= 0:
            self.store(self.state.choose_device(self.settings(), self.ui.deviceComboBox.itemData(index)))
            self.checkDevice()

    def onBrainExtractionChanged(self, index) -> None:
        if index >= 0:
            data = self.ui.brainExtractionComboBox.itemData(index)
            self.store(self.state.choose_brain_extraction(self.settings(), data))

    def onMirroringChanged(self, index) -> None:
        if index >= 0:
            self.store(
                self.state.choose_mirroring(self.settings(), self.ui.mirroringComboBox.itemData(index))
            )

    def onReferenceChanged(self, index) -> None:
        if self._parameterNode and index >= 0:
            self._parameterNode.reference = self.ui.referenceComboBox.itemData(index) or ""

    def checkDevice(self) -> None:
        """Ask the warm engine which device a run will use and how fast the model is there."""
        settings = self.settings()
        self.state.missing_packages = [p.requirement.specifier for p in unmet(requirements_for())]
        model = self.state.selected_model(settings)
        pending = self._deviceCheck is not None and not self._deviceCheck.finished
        if self.state.missing_packages or not model or pending:
            self.updateGui()
            return
        self._deviceCheck = self.logic.checkDevice(*self.state.device_check_sent(settings))
        self._timer.start()
        self.updateGui()

    # Loading data and assigning sequences

    @vtk.calldata_type(vtk.VTK_OBJECT)
    def onNodeAdded(self, caller, event, node) -> None:
        if is_mri_volume(node):
            # Loaders name a node (and attach its DICOM attributes) after adding it: look once they are done.
            qt.QTimer.singleShot(0, lambda: self.assignVolumes([node], replace=False))

    def assignVolumes(self, nodes, replace: bool) -> None:
        """Put volumes into the selectors of the sequences their names/series descriptions name."""
        if not self._parameterNode or self._run is not None:
            return
        nodes = [n for n in nodes if n is not None and n.GetScene() is slicer.mrmlScene]
        found = assign_sequences(nodes, self.logic.dicomSeriesDescriptions)
        for sequence, node in found.items():
            if replace or getattr(self._parameterNode, f"{sequence}Volume") is None:
                setattr(self._parameterNode, f"{sequence}Volume", node)

    def onAssignFromNames(self) -> None:
        for sequence in SEQUENCES:
            setattr(self._parameterNode, f"{sequence}Volume", None)
        self.assignVolumes(slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode"), replace=True)

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
            self.useCase(nodes)
        for line in self.logic.lastSeriesChoice.describe() if self.logic.lastSeriesChoice else ():
            self.log(line)

    def onLoadSample(self) -> None:
        with slicer.util.WaitCursor():
            nodes = self.runWithErrorDisplay(
                _("Could not generate the synthetic case."), self.logic.loadSyntheticCase
            )
        if nodes:
            self.useCase(nodes)

    def useCase(self, nodes: SequenceMap) -> None:
        """A new exam: PanelState says what it resets; show its reference volume."""
        self.store(self.state.new_case(self.settings(), nodes))
        self.log(self.state.status)
        reference = nodes[self.state.reference_of(self.settings())]
        slicer.util.setSliceViewerLayers(background=reference, fit=True)
        self.updateGui()

    # Running

    def onApplyButton(self) -> None:
        if self._run is not None:
            self.cancelRun()
            return
        settings = self.settings()
        with slicer.util.WaitCursor():
            if not self.runWithErrorDisplay(
                _("Could not prepare the segmentation."), self.logic.ensureDependencies
            ):
                return
            engineReady = self.logic.engineReady()
            self._run = self.runWithErrorDisplay(
                _("Could not start the segmentation."), self.logic.start, self.state.request(settings)
            )
        if self._run is None:
            return
        self.ui.logTextEdit.clear()
        self.state.run_started(settings, engineReady)
        self.updateGui()
        self._timer.start()

    def onTimer(self) -> None:
        check = self._deviceCheck
        if check is not None and check.finished:
            self._deviceCheck = None
            report = check.reply.get("device") if check.returncode == 0 else None
            error = check.error_message() if check.returncode not in (0, None) else ""
            if not self.state.device_checked(self.settings(), report, error) and not check.cancelled:
                self.checkDevice()  # the choice changed meanwhile
        run = self._run
        if run is not None:
            for event in run.poll():
                line = self.state.run_event(event)
                if line:
                    self.log(line)
            if run.finished:
                self.onRunFinished()
        if self._run is None and self._deviceCheck is None:
            self._timer.stop()
        self.updateGui()

    def onRunFinished(self) -> None:
        run, self._run = self._run, None
        try:
            with slicer.util.WaitCursor():
                segmentation = run.finish()
        except MSTKDError as error:
            self.state.run_failed(str(error))
            self.log(str(error))
            slicer.util.errorDisplay(str(error), windowTitle=_("Segmentation failed"))
        except Exception as error:
            logging.error(traceback.format_exc())
            self.state.run_failed(str(error))
            slicer.util.errorDisplay(
                _("Unexpected error: {error}").format(error=error), detailedText=traceback.format_exc()
            )
        else:
            self._parameterNode.outputSegmentation = segmentation
            slicer.util.setSliceViewerLayers(background=run.inputs[run.reference])
            self.state.run_finished(
                segmentation.GetName(),
                read_volumes_table(segmentation),
                read_notes(segmentation),
                run.summary,
            )
            for warning in run.warnings:
                self.log(_("Warning: {warning}").format(warning=warning))
            if run.warnings:
                slicer.util.warningDisplay("\n\n".join(run.warnings), windowTitle=_("Check the result"))
        self.updateGui()

    def cancelRun(self, warmUp: bool = True) -> None:
        run, self._run = self._run, None
        if run is None:
            return
        run.cancel()
        self.state.run_cancelled()
        self.log(_("Cancelled."))
        self.updateGui()
        if warmUp:
            self.checkDevice()  # a new engine warms up for the next run

    # Messages

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
    """The Python that runs the engine: PythonSlicer (the same packages as Slicer)."""
    found = shutil.which("PythonSlicer")
    if found:
        return found
    candidate = Path(sys.executable).with_name("PythonSlicer" + (".exe" if os.name == "nt" else ""))
    return str(candidate) if candidate.is_file() else sys.executable


def engineEnvironment() -> Dict[str, str]:
    """The engine's environment: the one Slicer was started with (not Slicer's own, modified one)."""
    startup = getattr(slicer.util, "startupEnvironment", None)
    return child_environment(startup() if startup is not None else None)


_warmEngine: Optional[EngineService] = None


def warmEngine() -> EngineService:
    """The session's warm engine: started on first use, ended when Slicer quits."""
    global _warmEngine
    if _warmEngine is None:
        _warmEngine = EngineService(serve_command(pythonSlicerExecutable()), engineEnvironment())
        slicer.app.connect("aboutToQuit()", _warmEngine.close)
    return _warmEngine


class MSTKDSegmentLogic(ScriptedLoadableModuleLogic):
    """The module's logic for the widget and the Python console; the work is done by MSTKDSegmentLib.

    Example::

        logic = slicer.util.getModuleLogic("MSTKDSegment")  # or MSTKDSegmentLogic()
        seg = logic.segment({"flair": flairNode, "t2": t2Node}, model="demo")
    """

    def __init__(self, engine=None) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.engine = engine or warmEngine()
        self.lib = SegmentationLogic(
            slicer.mrmlScene,
            slicer.modules.segmentations.logic(),
            slicer.modules.volumes.logic(),
            engine=self.engine,
            work_folder=slicer.app.temporaryPath,
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
        brainExtraction: str = DEFAULT_BRAIN_EXTRACTION,
        brainMask: bool = False,
        mirrorAxes: Optional[str] = None,
    ):
        """Segment volumes keyed by sequence ('flair', 't1', 't1ce' or 'T1Gd', 't2'); returns the result.

        `brainExtraction`: 'auto', 'deepbet', 'hd-bet' or 'none'; `brainMask` adds the brain mask
        the engine used as a segment of its own; `mirrorAxes` 'none' segments in one pass (faster),
        'x' ... 'xyz' mirrors along those axes (default: as the model file says)."""
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
            brain_extraction=brainExtraction,
            brain_mask=brainMask,
            mirror_axes=mirrorAxes,
        )

    def start(self, request):
        """Start a segmentation in the background; returns the SegmentationRun to poll."""
        return self.lib.start(request)

    def checkDevice(self, model: str, device: str = DEFAULT_DEVICE):
        """Ask the warm engine which device a run will use, and the model's speed there (a job to poll)."""
        return self.engine.check_device(model, device)

    def engineReady(self) -> bool:
        """True when the warm engine is up (a run starts without importing PyTorch first)."""
        return bool(getattr(self.engine, "ready", False))

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
        """Import a DICOM folder and load its FLAIR, T1, T1Gd and T2 series, chosen from their tags: into the
        application's DICOM database when one is open (so that DICOM SEG export finds the study), else a
        temporary one. `overrides` maps a sequence to the series UID to use instead, e.g.
        {"t1ce": "1.2.3..."} (None leaves it out); `lastSeriesChoice` keeps what was chosen and why."""
        from DICOMLib import DICOMUtils

        def load(database) -> SequenceMap:
            loader = DicomLoader(
                slicer.mrmlScene, database, DICOMUtils.importDicom, DICOMUtils.loadSeriesByUID
            )
            nodes, self.lastSeriesChoice = loader.load(folder, overrides)
            for line in self.lastSeriesChoice.describe():
                logging.info(line)
            return nodes

        database = slicer.dicomDatabase
        if database is not None and database.isOpen:
            return load(database)
        with DICOMUtils.TemporaryDICOMDatabase() as temporary:
            return load(temporary)

    @staticmethod
    def dicomSeriesDescriptions(node) -> List[str]:
        """The DICOM series description of a volume loaded from DICOM, if Slicer's database knows it."""
        return series_descriptions(node, slicer.dicomDatabase)

    def loadSyntheticCase(self, seed: int = 0, shape=None) -> SequenceMap:
        """Generate a synthetic brain-tumour exam (mstkd.phantom) in the scene; returns its volumes."""
        self.ensureDependencies(phantom=True)
        return self.lib.load_phantom(seed, shape or SYNTHETIC_SHAPE)

    # Dependencies

    def ensureDependencies(self, askConfirmation: bool = True, phantom: bool = False) -> bool:
        """Install what the engine needs (PyTorch through the PyTorch extension, the rest with pip, PyTorch
        and numpy pinned), after one question; checked from package metadata, nothing is imported.

        Raises MSTKDError when the user declines or the PyTorch extension is missing.
        """
        installer = DependencyInstaller(
            confirm=slicer.util.confirmOkCancelDisplay,
            install_torch=self._installTorch,
            pip_install=slicer.util.pip_install,
            offer_restart=self._offerRestart,
            folder=slicer.app.temporaryPath,
        )
        with slicer.util.WaitCursor():
            return installer.ensure(requirements_for(phantom), ask=askConfirmation)

    @staticmethod
    def _installTorch(minimum: str) -> bool:
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
        return (
            torchLogic.installTorch(askConfirmation=False, torchVersionRequirement=f">={minimum}") is not None
        )

    @staticmethod
    def _offerRestart(packages) -> None:
        question = _(
            "{packages} were upgraded while Slicer had them loaded; the new versions take effect after a "
            "restart. Restart Slicer now?"
        ).format(packages=", ".join(packages))
        if slicer.util.confirmYesNoDisplay(question):
            slicer.util.restart()


#
# Test
#


class MSTKDSegmentTest(ScriptedLoadableModuleTest):
    """Inside Slicer: what only the application can show (README, "Tested only in Slicer")."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        for test in (
            self.test_DependencyCheckImportsNothing,
            self.test_SampleDataFromCode,
            self.test_SyntheticCaseEndToEnd,
            self.test_WidgetTracksInputs,
            self.test_ModelFileChoiceStays,
            self.test_NewCaseResetsOutput,
            self.test_BrainExtractionChoiceStays,
            self.test_MirroringChoiceStays,
        ):
            self.setUp()
            test()

    def test_DependencyCheckImportsNothing(self):
        self.delayDisplay("The dependency check reads package metadata only")
        imported = "torch" in sys.modules
        MSTKDSegmentLogic().ensureDependencies(askConfirmation=False)
        self.assertEqual("torch" in sys.modules, imported)

    def test_SampleDataFromCode(self):
        import SampleData

        self.delayDisplay("SampleData.downloadSample() from code generates the synthetic case")
        node = SampleData.downloadSample(SYNTHETIC_CASE_NAME)
        self.assertTrue(node.IsA("vtkMRMLScalarVolumeNode"))
        self.assertEqual(len(slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")), len(SEQUENCES))

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
        self.assertEqual(logic.lib.work_folder, slicer.app.temporaryPath)
        self.assertEqual(logic.engine.env["PATH"], slicer.util.startupEnvironment()["PATH"])

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
        self.assertEqual(list(read_volumes_table(segmentation)), ["NCR", "ED", "ET", "WT", "TC"])
        self.assertTrue(read_notes(segmentation))
        tags = []
        for segmentId in ("MSTKD_ET", "MSTKD_TC"):
            tag = vtk.reference("")
            segment = segmentation.GetSegmentation().GetSegment(segmentId)
            segment.GetTag(segment.GetTerminologyEntryTagName(), tag)
            tags.append(str(tag))
        self.assertNotEqual(tags[0], tags[1])  # the terminology selector tells ET from TC

        self.delayDisplay("Re-running in the warm engine keeps segment IDs and the user's segments")
        engine = logic.engine.pid
        userSegment = segmentation.GetSegmentation().AddEmptySegment("", "My notes")
        again = logic.segment(
            {"flair": nodes["flair"], "t1ce": nodes["t1ce"]},
            model=models[0],
            device="cpu",
            segmentation=segmentation,
            brainMask=True,
        )
        self.assertIs(again, segmentation)
        self.assertIsNotNone(segmentation.GetSegmentation().GetSegment("MSTKD_BRAIN"))
        self.assertEqual(logic.engine.pid, engine)
        self.assertIsNotNone(segmentation.GetSegmentation().GetSegment(userSegment))
        self.assertIsNone(segmentation.GetSegmentation().GetSegment("MSTKD_WT"))
        if platform.system() == "Darwin" and platform.machine() == "arm64":
            check = logic.checkDevice(models[0], "auto")
            check.wait(120)
            self.assertIn(check.reply["device"]["kind"], ("mps", "cpu"))
        self.delayDisplay("Test passed")

    def test_WidgetTracksInputs(self):
        slicer.util.selectModule("MSTKDSegment")
        widget = slicer.modules.MSTKDSegmentWidget
        self.assertFalse(widget.ui.applyButton.enabled)
        volume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "AX T2 FSE")
        slicer.app.processEvents()
        self.assertIs(widget.ui.t2Selector.currentNode(), volume)
        labels = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "FLAIR lesion")
        slicer.app.processEvents()
        self.assertIsNot(widget.ui.flairSelector.currentNode(), labels)
        widget.ui.flairSelector.setCurrentNode(volume)
        self.assertTrue(widget.ui.inputsWarningLabel.visible)

        self.delayDisplay("A volume added while the module is hidden is left alone")
        slicer.util.selectModule("Data")
        slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "T1 post Gd subtraction")
        slicer.app.processEvents()
        slicer.util.selectModule("MSTKDSegment")
        self.assertIsNone(widget.ui.t1ceSelector.currentNode())
        self.delayDisplay("Test passed")

    def test_ModelFileChoiceStays(self):
        slicer.util.selectModule("MSTKDSegment")
        widget = slicer.modules.MSTKDSegmentWidget
        combo = widget.ui.modelComboBox
        combo.currentIndex = combo.findData(MODEL_FILE)
        slicer.app.processEvents()
        self.assertEqual(combo.currentData, MODEL_FILE)
        self.assertTrue(widget.ui.modelPathLineEdit.visible)
        self.delayDisplay("Test passed")

    def test_NewCaseResetsOutput(self):
        slicer.util.selectModule("MSTKDSegment")
        widget = slicer.modules.MSTKDSegmentWidget
        previous = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "case A tumour")
        widget.ui.outputSegmentationSelector.setCurrentNode(previous)
        widget.onLoadSample()
        self.assertIsNone(widget.ui.outputSegmentationSelector.currentNode())
        self.delayDisplay("Test passed")

    def test_BrainExtractionChoiceStays(self):
        slicer.util.selectModule("MSTKDSegment")
        widget = slicer.modules.MSTKDSegmentWidget
        combo = widget.ui.brainExtractionComboBox
        combo.currentIndex = combo.findData("none")
        widget.ui.brainMaskCheckBox.checked = True
        slicer.app.processEvents()
        parameters = widget.logic.getParameterNode()
        self.assertEqual(parameters.brainExtraction, "none")
        self.assertTrue(parameters.brainMask)
        widget.updateGui()
        self.assertEqual(combo.currentData, "none")
        request = widget.state.request(widget.settings())
        self.assertEqual((request.brain_extraction, request.brain_mask), ("none", True))
        self.delayDisplay("Test passed")

    def test_MirroringChoiceStays(self):
        slicer.util.selectModule("MSTKDSegment")
        widget = slicer.modules.MSTKDSegmentWidget
        combo = widget.ui.mirroringComboBox
        combo.currentIndex = combo.findData("none")
        slicer.app.processEvents()
        self.assertEqual(widget.logic.getParameterNode().mirroring, "none")
        widget.updateGui()
        self.assertEqual(combo.currentData, "none")
        self.assertEqual(widget.state.request(widget.settings()).mirror_axes, "none")
        combo.currentIndex = combo.findData("")
        slicer.app.processEvents()
        self.assertIsNone(widget.state.request(widget.settings()).mirror_axes)
        self.delayDisplay("Test passed")
