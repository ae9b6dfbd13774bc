"""Segment the chosen volumes with the engine's `segment` command and bring the result into the scene.

The engine runs either as a child process per run (ChildProcessEngine) or warm, one process kept for
the session (EngineService); both run the same command. `SegmentationLogic.start()` writes the
inputs and starts the run; the returned `SegmentationRun` is polled (the widget's QTimer),
cancelled, or waited for, and `finish()` imports the result. Until `finish()` succeeds the scene
is not modified at all, so a cancelled or failed run leaves it exactly as it was.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple

import slicer
from vtkmodules.vtkCommonMath import vtkMatrix4x4

from mstkd.conventions import (
    DEFAULT_BRAIN_EXTRACTION,
    DEFAULT_DEVICE,
    DEFAULT_LABELS,
    DISPLAY_NAMES,
    SEQUENCES,
    SequenceMap,
    check_labels,
    label_convention,
    parse_device,
    parse_mirror_axes,
    sequence_map,
)
from mstkd.errors import MSTKDError
from mstkd.inference.volumes import region_volumes_ml
from mstkd.preprocess.brain_extraction import check_choice
from mstkd.preprocess.reference import choose_reference
from mstkd.resources import DEFAULT_MODEL
from MSTKDSegmentLib.engine import child_environment, segment_command
from MSTKDSegmentLib.marks import import_brain_mask, mark_trust, remove_brain_mask
from MSTKDSegmentLib.notes import result_notes, store_notes
from MSTKDSegmentLib.process import ChildProcessEngine, Event, Progress, ProgressClock
from MSTKDSegmentLib.results import (
    check_result_file,
    check_summary_volumes,
    import_segments,
    label_array,
    place_beside,
    read_label_map,
    read_summary,
    same_matrix,
    set_reference_geometry,
    store_provenance,
    update_volumes_table,
    volumes_from_summary,
)
from MSTKDSegmentLib.volumes import (
    SYNTHETIC_SHAPE,
    check_input_volume,
    export_inputs,
    load_case_folder,
    load_phantom,
    world_ijk_to_ras,
)

# NRRD keeps the geometry in double precision (NIfTI stores it as float32).
OUTPUT_FILE = "segmentation.nrrd"
SUMMARY_FILE = "summary.json"
BRAIN_MASK_FILE = "brainmask.nrrd"

EventCallback = Callable[[Event], None]


class Engine(Protocol):
    """What runs `mstkd segment`: ChildProcessEngine or the warm EngineService."""

    def segment(self, arguments: Sequence[str], folder: str) -> Any:
        """Start a run with these arguments (files in `folder`); returns the job to poll."""


@dataclass
class SegmentationRequest:
    """What to segment and how: volumes by sequence (aliases accepted), model, device and output.

    `brain_extraction` is one of BRAIN_EXTRACTION_CHOICES; `brain_mask` adds the brain mask the
    engine used as a segment of its own. `mirror_axes` ('none' for one pass, 'x' ... 'xyz') overrides
    the model file's test-time mirroring; None keeps it.
    """

    inputs: Mapping[str, object]
    model: str = DEFAULT_MODEL
    device: str = DEFAULT_DEVICE
    reference: Optional[str] = None
    segmentation: Optional[object] = None
    nested: bool = False
    show_3d: bool = True
    labels: str = DEFAULT_LABELS
    brain_extraction: str = DEFAULT_BRAIN_EXTRACTION
    brain_mask: bool = False
    mirror_axes: Optional[str] = None


class SegmentationRun:
    """One running segmentation: poll it, cancel it, wait for it, then `finish()` to import the result."""

    def __init__(
        self,
        logic: SegmentationLogic,
        request: SegmentationRequest,
        inputs: SequenceMap[object],
        reference: str,
        folder: Path,
        process: Any,
        geometry: vtkMatrix4x4,
    ) -> None:
        self.logic = logic
        self.request = request
        self.inputs = inputs
        self.reference = reference
        self.folder = folder
        self.process = process
        self.geometry = geometry
        self.clock = ProgressClock()
        self.progress: Optional[Progress] = None
        self.segmentation_node = None
        self.warnings: List[str] = []  # what the engine found suspect about the inputs or the model
        self.summary: Dict[str, Any] = {}  # the engine's, once the result is imported
        self._done = False

    @property
    def sequences(self) -> Tuple[str, ...]:
        """The sequences given, in canonical order."""
        return self.inputs.subset.sequences

    @property
    def finished(self) -> bool:
        """True once the child process has ended (successfully or not) and its output is read."""
        return self.process.finished

    @property
    def cancelled(self) -> bool:
        """True when the run was cancelled."""
        return self.process.cancelled

    @property
    def log(self) -> List[str]:
        """The child's log lines so far (stdout lines that are not progress, and stderr)."""
        return list(self.process.log)

    def poll(self) -> List[Event]:
        """What arrived since the last call: Progress events and log lines (never blocks)."""
        events = self.process.poll()
        for event in events:
            if isinstance(event, Progress):
                self.progress = event
                self.clock.update(event)
        return events

    def remaining_s(self) -> Optional[float]:
        """Estimated seconds left, or None while unknown."""
        return self.clock.remaining_s()

    def cancel(self) -> None:
        """End the engine's work at once (never waiting for it); its temporary files are deleted once
        it has ended. The scene is untouched."""
        self._done = True
        folder = self.folder
        self.process.cancel(then=lambda: shutil.rmtree(folder, ignore_errors=True))

    def wait(self, timeout_s: Optional[float] = None, on_event: Optional[EventCallback] = None) -> bool:
        """Block until the child ends, handing events to `on_event`; False when `timeout_s` passed first."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self.finished:
            for event in self.poll():
                if on_event:
                    on_event(event)
            if deadline is not None and time.monotonic() > deadline:
                return False
            self.process.wait(0.1)
        for event in self.poll():
            if on_event:
                on_event(event)
        return True

    def finish(self):
        """Import the result into the segmentation node and return it; raise MSTKDError if the run failed."""
        if self.cancelled:  # its files go once the engine has ended (see cancel)
            raise MSTKDError("The segmentation was cancelled; the scene was left as it was.")
        if self._done:
            if self.segmentation_node is None:
                raise MSTKDError("This segmentation run already ended without a result.")
            return self.segmentation_node
        if not self.finished:
            raise MSTKDError("The segmentation is still running; wait for it or cancel it.")
        try:
            if self.process.returncode != 0:
                raise MSTKDError(self.process.error_message())
            self.segmentation_node = self.logic.import_result(self)
            return self.segmentation_node
        finally:
            self._cleanup()

    def _cleanup(self) -> None:
        self._done = True
        shutil.rmtree(self.folder, ignore_errors=True)


class SegmentationLogic:
    """Segmentation of brain tumours in a scene, through the engine's `segment` command.

    `scene`, `segmentations_logic` and `volumes_logic` are the scene and module logics to work
    with; `engine` runs the command (default: a child process per run of `command`, which defaults
    to `python -m mstkd segment`, in `environment`); `work_folder` holds the temporary files.
    In Slicer: PythonSlicer, Slicer's startup environment and its temporary folder.
    """

    def __init__(
        self,
        scene,
        segmentations_logic=None,
        volumes_logic=None,
        python: Optional[str] = None,
        command: Optional[Sequence[str]] = None,
        work_folder: Optional[str] = None,
        environment: Optional[Mapping[str, str]] = None,
        engine: Optional[Engine] = None,
    ) -> None:
        self.scene = scene
        self.segmentations_logic = segmentations_logic
        self.volumes_logic = volumes_logic
        command = list(command) if command else segment_command(python or sys.executable)
        self.engine = engine or ChildProcessEngine(command, child_environment(environment))
        self.work_folder = work_folder

    # Loading data

    def load_case(self, folder) -> Tuple[str, SequenceMap[object]]:
        """Load the sequences of one case (any BraTS/FeTS layout, loose files); returns (case id, nodes)."""
        return load_case_folder(self.scene, self._volumes_logic(), folder)

    def load_phantom(
        self, seed: int = 0, shape: Sequence[int] = SYNTHETIC_SHAPE, sequences: Sequence[str] = SEQUENCES
    ) -> SequenceMap[object]:
        """Generate a synthetic case and load its sequences; returns the node of each sequence."""
        return load_phantom(self.scene, self._volumes_logic(), seed, shape, sequences)

    def _volumes_logic(self):
        if self.volumes_logic is None:
            raise MSTKDError("Loading volumes needs the Volumes module logic; pass volumes_logic.")
        return self.volumes_logic

    # Segmenting

    def check(self, request: SegmentationRequest) -> Tuple[SequenceMap[object], str]:
        """Validate a request; returns the inputs by canonical sequence and the reference sequence."""
        inputs = sequence_map(request.inputs)
        for sequence, node in inputs.items():
            check_input_volume(node, DISPLAY_NAMES[sequence])
            if node.GetScene() is not self.scene:
                raise MSTKDError(f"{DISPLAY_NAMES[sequence]}: '{node.GetName()}' is not in this scene.")
            world_ijk_to_ras(node)
        reference = choose_reference(inputs, request.reference)
        parse_device(request.device)
        if not str(request.model or "").strip():
            raise MSTKDError("Choose a model: a name from the list or a model file.")
        label_convention(request.labels)
        check_choice(request.brain_extraction)
        if request.mirror_axes is not None:
            parse_mirror_axes(request.mirror_axes)
        target = request.segmentation
        if target is not None:
            if not target.IsA("vtkMRMLSegmentationNode"):
                raise MSTKDError(
                    f"'{target.GetName()}' is not a segmentation; choose a segmentation or a new one."
                )
            self._check_transform(target)
        return inputs, reference

    def start(self, request: SegmentationRequest) -> SegmentationRun:
        """Write the inputs to a temporary folder and start the engine; returns the run to poll."""
        inputs, reference = self.check(request)
        if self.work_folder:
            Path(self.work_folder).mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="mstkd-segment-", dir=self.work_folder))
        try:
            files = export_inputs(inputs, folder)
            geometry = world_ijk_to_ras(inputs[reference])
            arguments: List[str] = []
            for sequence, path in files.items():
                arguments += [f"--{sequence}", str(path)]
            arguments += [
                "-o", str(folder / OUTPUT_FILE),
                "--reference", reference,
                "--model", str(request.model),
                "--device", request.device,
                "--labels", request.labels,
                "--summary", str(folder / SUMMARY_FILE),
                "--brain-extraction", check_choice(request.brain_extraction),
                "--progress", "jsonl",
            ]  # fmt: skip
            if request.brain_mask:
                arguments += ["--brain-mask", str(folder / BRAIN_MASK_FILE)]
            if request.mirror_axes is not None:
                arguments += ["--mirror-axes", request.mirror_axes]
            process = self.engine.segment(arguments, str(folder))
        except OSError as error:
            shutil.rmtree(folder, ignore_errors=True)
            raise MSTKDError(f"Could not start the segmentation engine ({error}).") from None
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return SegmentationRun(self, request, inputs, reference, folder, process, geometry)

    def segment(
        self,
        inputs: Mapping[str, object],
        model: str = DEFAULT_MODEL,
        device: str = DEFAULT_DEVICE,
        reference: Optional[str] = None,
        segmentation=None,
        nested: bool = False,
        show_3d: bool = True,
        timeout_s: Optional[float] = None,
        on_event: Optional[EventCallback] = None,
        brain_extraction: str = DEFAULT_BRAIN_EXTRACTION,
        brain_mask: bool = False,
        mirror_axes: Optional[str] = None,
    ):
        """Segment and wait (for scripts and the Python console); returns the segmentation node."""
        request = SegmentationRequest(
            dict(inputs),
            model,
            device,
            reference,
            segmentation,
            nested,
            show_3d,
            brain_extraction=brain_extraction,
            brain_mask=brain_mask,
            mirror_axes=mirror_axes,
        )
        run = self.start(request)
        try:
            if not run.wait(timeout_s, on_event):
                raise MSTKDError(f"The segmentation took longer than {timeout_s:g} s and was stopped.")
        except BaseException:
            run.cancel()
            raise
        return run.finish()

    # The result

    def import_result(self, run: SegmentationRun):
        """Bring a finished run's label map into its segmentation node (created when none was given)."""
        reference_node = run.inputs[run.reference]
        if reference_node.GetScene() is not self.scene:
            raise MSTKDError("The reference volume was removed from the scene while segmenting; run again.")
        output = run.folder / OUTPUT_FILE
        if not output.is_file():
            raise MSTKDError(
                "The engine ended without writing a segmentation; see the log for what it reported."
            )
        summary = run.summary = read_summary(run.folder / SUMMARY_FILE, run.request.labels)
        check_result_file(output)
        label_node = read_label_map(output)
        written = vtkMatrix4x4()
        label_node.GetIJKToRASMatrix(written)
        if label_node.GetImageData().GetDimensions() != reference_node.GetImageData().GetDimensions() or not (
            same_matrix(written, run.geometry)
        ):
            raise MSTKDError(
                "The engine returned a segmentation on a grid other than the reference volume's; "
                "this is a bug of the engine, please report it with the log."
            )
        labels = label_array(label_node)
        check_labels(labels, label_convention(run.request.labels), "segmentation the engine wrote")
        brain = _brain_mask(run.folder / BRAIN_MASK_FILE, label_node) if run.request.brain_mask else None
        volumes = region_volumes_ml(labels, label_convention(run.request.labels), label_node.GetSpacing())
        check_summary_volumes(summary, volumes)
        run.warnings = [str(w) for w in summary.get("warnings") or []]

        target = run.request.segmentation
        created = target is None
        if created:
            target = self.scene.AddNewNodeByClass(
                "vtkMRMLSegmentationNode", self.scene.GenerateUniqueName(f"{reference_node.GetName()} tumour")
            )
            target.SetAndObserveTransformNodeID(reference_node.GetTransformNodeID())
            target.CreateDefaultDisplayNodes()
        elif target.GetDisplayNode() is None:
            target.CreateDefaultDisplayNodes()
        local = self._local_grid(target, reference_node, run.geometry)
        import_segments(target, labels, run.request.labels, local, run.request.nested)
        if brain is not None:
            import_brain_mask(target, brain, local)
        else:
            remove_brain_mask(target)
        mark_trust(target, summary.get("trust") or {})
        set_reference_geometry(target, reference_node)
        if run.request.show_3d:
            target.CreateClosedSurfaceRepresentation()
        else:
            target.RemoveClosedSurfaceRepresentation()
        store_provenance(target, summary, run.sequences, run.reference)
        store_notes(target, result_notes(summary, run.sequences))
        table = update_volumes_table(self.scene, target, volumes_from_summary(summary) or volumes)
        if created:
            place_beside(self.scene, target, reference_node)
            place_beside(self.scene, table, reference_node)
        return target

    @staticmethod
    def _check_transform(segmentation_node) -> None:
        """Refuse a segmentation node under a non-linear transform (its segments would be resampled)."""
        transform = segmentation_node.GetParentTransformNode()
        if transform is not None and not transform.IsTransformToWorldLinear():
            raise MSTKDError(
                f"'{segmentation_node.GetName()}' is under a non-linear transform; choose a new "
                "segmentation, or harden its transform first."
            )

    @staticmethod
    def _local_grid(segmentation_node, reference_node, world: vtkMatrix4x4) -> vtkMatrix4x4:
        """The label map's grid in the segmentation node's coordinates: exactly the reference's own grid
        when both share a transform, else the world grid mapped through the node's (linear) transform."""
        if segmentation_node.GetTransformNodeID() == reference_node.GetTransformNodeID():
            local = vtkMatrix4x4()
            reference_node.GetIJKToRASMatrix(local)
            return local
        to_node = vtkMatrix4x4()
        slicer.vtkMRMLTransformNode.GetMatrixTransformBetweenNodes(
            None, segmentation_node.GetParentTransformNode(), to_node
        )
        local = vtkMatrix4x4()
        vtkMatrix4x4.Multiply4x4(to_node, world, local)
        return local


def _brain_mask(path: Path, labels_node):
    """The (k, j, i) brain mask the engine wrote, checked to lie on the label map's grid."""
    if not path.is_file():
        raise MSTKDError("The engine ended without writing the brain mask; see the log for what it reported.")
    node = read_label_map(path)
    grids = [vtkMatrix4x4(), vtkMatrix4x4()]
    node.GetIJKToRASMatrix(grids[0])
    labels_node.GetIJKToRASMatrix(grids[1])
    same_size = node.GetImageData().GetDimensions() == labels_node.GetImageData().GetDimensions()
    if not (same_size and same_matrix(*grids)):
        raise MSTKDError(
            "The engine wrote the brain mask on a grid other than the segmentation's; this is a bug of "
            "the engine, please report it with the log."
        )
    return label_array(node)
