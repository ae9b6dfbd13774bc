"""The panel's state (MSTKDSegmentLib.panel): what a new case resets, the model, device and brain-extraction
choices, the request they make, the device panel, the status line, against real MRML volume nodes."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("trame_slicer")

from segment_protocol_double import DEVICE_REPORT  # noqa: E402
from slicer_helpers import add_volume, tumour_array  # noqa: E402

from mstkd.conventions import BRAIN_EXTRACTION_CHOICES, DEFAULT_BRAIN_EXTRACTION, DEVICE_CHOICES  # noqa: E402


class Clock:
    """Seconds that pass when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


CPU_REPORT = DEVICE_REPORT  # what the warm engine's device check says on a CPU-only machine


@pytest.fixture
def app():
    from trame_slicer.core import SlicerApp

    return SlicerApp()


@pytest.fixture
def state():
    from MSTKDSegmentLib import ModelChoice, PanelState

    return PanelState([ModelChoice("demo", "Demo model"), ModelChoice("other", "", "research")], Clock())


def _exam(app):
    """FLAIR and T1ce of 32 x 28 x 24 voxels of 1.2 x 1.0 x 1.5 mm (T1ce is the reference)."""
    flair = add_volume(app.scene, "FLAIR", tumour_array() // 2, (1.2, 1.0, 1.5))
    t1ce = add_volume(app.scene, "T1ce", tumour_array(), (1.2, 1.0, 1.5))
    return {"flair": flair, "t1ce": t1ce}


def test_a_new_case_resets_the_output_reference_and_inputs(app, state):
    from MSTKDSegmentLib import PanelSettings

    old = _exam(app)
    previous_result = app.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "case A tumour")
    settings = PanelSettings(inputs={**old, "t2": old["flair"]}, reference="flair", output=previous_result)
    state.result = "NCR 1.0 mL"
    new = {"t1": add_volume(app.scene, "case B T1", tumour_array())}

    settings = state.new_case(settings, new)

    # Segmenting case B creates a new segmentation: case A's is never overwritten.
    assert settings.output is None
    assert settings.inputs == {"flair": None, "t1": new["t1"], "t1ce": None, "t2": None}
    assert settings.reference == ""
    assert state.view(settings).result == "" and state.view(settings).status == "Loaded T1."


def test_choosing_model_file_keeps_the_file_item_and_shows_the_path(app, state):
    from MSTKDSegmentLib import MODEL_FILE, PanelSettings

    settings = PanelSettings(inputs=_exam(app))
    assert state.selected_model(settings) == "demo"  # nothing stored yet: the first registry model
    view = state.view(settings)
    assert [data for _, data in view.model.items] == ["demo", "other", MODEL_FILE]

    # The parameter node keeps the choice, and the view drawn from it stays on the file item even
    # before a path is given (it used to store '' and snap back to the first registry model).
    settings = state.choose_model(settings, MODEL_FILE)
    assert settings.model == MODEL_FILE
    view = state.view(settings)
    assert view.model.current == 2 and view.model_file_visible
    assert view.apply_enabled is False and view.apply_tooltip == "Choose a model, or a model file."
    settings.model_file = "/models/mine.safetensors"
    assert state.selected_model(settings) == "/models/mine.safetensors"

    settings = state.choose_model(settings, "other")
    view = state.view(settings)
    assert view.model.current == 1 and not view.model_file_visible
    assert view.model_description == "research"
    # A scene saved by an earlier version: no model item, a model file.
    assert state.model_item(PanelSettings(model_file="/m.safetensors")) == MODEL_FILE


def test_device_choices_are_the_engines_and_take_one_gpu_of_several(state):
    from MSTKDSegmentLib import PanelSettings

    view = state.view(PanelSettings())
    assert [data for _, data in view.device.items] == list(DEVICE_CHOICES)
    assert "mps" in DEVICE_CHOICES
    settings = state.choose_device(PanelSettings(), "CUDA:1")
    assert settings.device == "cuda:1"
    view = state.view(settings)
    assert view.device.items[view.device.current] == ("GPU 1 (cuda:1)", "cuda:1")
    with pytest.raises(Exception, match="Unknown device"):
        state.choose_device(settings, "tpu")


def test_the_brain_extraction_choice_and_the_output_options_make_the_request(app, state):
    from MSTKDSegmentLib import PanelSettings

    view = state.view(PanelSettings())
    assert [data for _, data in view.brain_extraction.items] == list(BRAIN_EXTRACTION_CHOICES)
    assert view.brain_extraction.items[view.brain_extraction.current][1] == DEFAULT_BRAIN_EXTRACTION
    exam = _exam(app)
    settings = state.choose_brain_extraction(PanelSettings(inputs=exam, model="other"), "HD-BET")
    assert settings.brain_extraction == "hd-bet"
    view = state.view(settings)
    assert view.brain_extraction.items[view.brain_extraction.current] == ("HD-BET (any sequence)", "hd-bet")
    with pytest.raises(Exception, match="Unknown brain extraction 'bet'"):
        state.choose_brain_extraction(settings, "bet")

    settings.nested, settings.show_3d, settings.brain_mask, settings.reference = True, False, True, "flair"
    request = state.request(settings)
    assert (request.brain_extraction, request.brain_mask, request.nested, request.show_3d) == (
        "hd-bet",
        True,
        True,
        False,
    )
    assert (request.model, request.reference, dict(request.inputs)) == ("other", "flair", exam)
    state.device_check_sent(settings)
    state.device_checked(settings, {**CPU_REPORT, "requested": "auto"})
    assert state.request(settings).device == "cpu"  # where the device check said the run goes
    assert not state.request(PanelSettings(inputs=exam)).brain_mask


def test_the_mirroring_choice_makes_the_request_and_the_expected_time(app, state):
    from MSTKDSegmentLib import PanelSettings

    view = state.view(PanelSettings())
    assert [data for _, data in view.mirroring.items] == ["", "none", "xyz"]
    assert view.mirroring.items[view.mirroring.current] == ("As the model file says", "")
    settings = PanelSettings(inputs=_exam(app))
    assert state.request(settings).mirror_axes is None  # the model file's own
    state.device_check_sent(settings)
    state.device_checked(settings, CPU_REPORT)  # measured with the model's 8 passes a window
    assert state.expected_time(settings).inference_s == pytest.approx(4 * 0.5)

    settings = state.choose_mirroring(settings, "none")
    assert state.request(settings).mirror_axes == "none"
    assert state.expected_time(settings).inference_s == pytest.approx(4 * 0.5 / 8)
    assert "4 windows at 0.06 s, measured" in state.view(settings).device_text
    view = state.view(settings)
    assert view.mirroring.items[view.mirroring.current] == ("Off: one pass (fastest)", "none")
    settings = state.choose_mirroring(settings, "xyz")
    assert state.expected_time(settings).inference_s == pytest.approx(4 * 0.5)
    with pytest.raises(Exception, match="distinct axes among x, y and z"):
        state.choose_mirroring(settings, "xx")


def test_a_hand_edited_mirroring_is_shown_or_stops_segment(app, state):
    """A parameter node edited by hand: other valid axes are shown as what the run will use; an invalid
    value disables Segment with the reason, and the panel still draws."""
    from MSTKDSegmentLib import PanelSettings

    settings = PanelSettings(inputs=_exam(app), mirroring="xy")
    state.device_check_sent(settings)
    state.device_checked(settings, CPU_REPORT)
    view = state.view(settings)
    assert view.mirroring.items[view.mirroring.current] == ("Along x, y: 4 passes", "xy")
    assert view.apply_enabled and state.request(settings).mirror_axes == "xy"
    assert state.expected_time(settings).inference_s == pytest.approx(4 * 0.5 / 2)

    settings.mirroring = "sideways"
    view = state.view(settings)
    assert [data for _, data in view.mirroring.items] == ["", "none", "xyz"]
    assert not view.apply_enabled
    assert (
        "distinct axes among x, y and z" in view.apply_tooltip
        and "Choose a mirroring item" in view.apply_tooltip
    )
    assert state.expected_time(settings) is None and "Expected time" not in view.device_text


def test_the_device_panel_says_where_and_how_long(app, state):
    from MSTKDSegmentLib import PanelSettings

    settings = PanelSettings(inputs=_exam(app))
    state.missing_packages = ["torch>=2.4"]
    text = state.view(settings).device_text
    assert text.startswith("Not installed yet: torch>=2.4") and "click Segment" in text
    state.missing_packages = []

    assert state.device_check_sent(settings) == ("demo", "auto")
    assert state.view(settings).device_text == "Checking the device..."
    assert state.device_checked(settings, CPU_REPORT)
    view = state.view(settings)
    assert view.device_level == "info"
    first, expected = view.device_text.splitlines()
    assert first == (
        "Runs on: the CPU (Test CPU, 2 cores, PyTorch 2.13.0+cpu): "
        "this PyTorch (2.13.0+cpu) is built without GPU support"
    )
    # The brain (non-zero voxels) spans 32 x 28 x 24 voxels = 38.4 x 28 x 36 mm: 20 x 14 x 18 voxels at
    # 2 mm, so 2 x 1 x 2 windows of 16 with half overlap; 4 x 0.5 s, plus reading 2 x 21504 voxels.
    assert expected == "Expected time for this exam: a few seconds (4 windows at 0.50 s, measured)"
    estimate = state.expected_time(settings)
    assert estimate.windows == 4 and estimate.inference_s == pytest.approx(2.0)

    gpu = {
        **CPU_REPORT,
        "device": "cuda",
        "kind": "cuda",
        "name": "NVIDIA H200",
        "free_mib": 140000.0,
        "total_mib": 143771.0,
        "cuda_build": "12.8",
        "reason": "",
    }
    state.device_check_sent(settings)
    state.device_checked(settings, gpu)
    assert state.view(settings).device_text.startswith(
        "Runs on: cuda, NVIDIA H200, 136.7 of 140.4 GiB free (CUDA 12.8, PyTorch 2.13.0+cpu)"
    )
    small = {**CPU_REPORT, "fell_back": True, "reason": "the GPU GeForce has 900 MiB free of 2048 MiB ..."}
    state.device_check_sent(settings)
    state.device_checked(settings, small)
    view = state.view(settings)
    assert view.device_level == "warning" and "900 MiB free" in view.device_text
    assert state.run_device(settings) == "cpu"  # what the panel says is what runs

    state.device_check_sent(settings)
    state.device_checked(settings, None, "A GPU was requested but PyTorch sees none")
    assert state.view(settings).device_level == "error"


def test_an_answer_about_an_earlier_choice_is_dropped(app, state):
    from MSTKDSegmentLib import PanelSettings

    settings = PanelSettings(inputs=_exam(app))
    state.device_check_sent(settings)
    settings = state.choose_device(settings, "cpu")  # changed while the engine was checking
    assert state.device_checked(settings, CPU_REPORT) is False
    assert state.device_report is None and not state.device_pending


def test_the_status_line_has_one_estimate_and_the_start_is_not_silent(app, state):
    from MSTKDSegmentLib import PanelSettings, Progress

    settings = PanelSettings(inputs=_exam(app))
    state.device_check_sent(settings)
    state.device_checked(settings, CPU_REPORT)
    clock = state.clock
    state.run_started(settings, engine_ready=False)
    clock.now += 4
    view = state.view(settings)
    assert view.status.startswith("Starting the engine") and view.status.endswith("4 s")
    assert view.apply_text == "Cancel" and view.apply_enabled and view.progress_visible

    # The engine's progress message carries no estimate of its own; the panel adds one.
    assert state.run_event(Progress("infer", 0.01, "window 1 of 8 (on cpu, 4 per batch)")) == (
        "infer: window 1 of 8 (on cpu, 4 per batch)"
    )
    assert state.run_event(Progress("infer", 0.02, "window 1 of 8 (on cpu, 4 per batch)")) is None
    status = state.view(settings).status
    assert status.count("left") == 1  # from the expected time while the fraction says little
    clock.now += 6
    state.run_event(Progress("infer", 0.5, "window 4 of 8 (on cpu, 4 per batch)"))
    status = state.view(settings).status
    assert status == "infer: window 4 of 8 (on cpu, 4 per batch) (about 10 s left)"
    assert state.view(settings).progress == 50

    state.run_finished(
        "T1ce tumour",
        {"NCR": 1.234, "WT": 5.0},
        [],
        {
            "model": {"name": "demo"},
            "sequences": ["flair", "t1ce"],
            "timings_s": {"total": 3.0, "inference": 2.0},
        },
    )
    view = state.view(settings)
    assert (
        view.status == "Done: 'T1ce tumour' (demo, flair, t1ce)." and view.result == "NCR 1.2 mL   WT 5.0 mL"
    )
    assert not view.progress_visible and view.apply_text == "Segment"
    # 1 s of reading and preparing for 2 x 21504 voxels: this machine's pace from now on.
    assert state.preparation_s_per_mvox == pytest.approx(1.0 / 0.043008)

    state.run_started(settings, engine_ready=True)
    assert state.view(settings).status == "Sending the exam to the engine..."
    state.run_cancelled()
    assert state.view(settings).status == "Cancelled; the scene was left as it was."


def test_the_segment_button_says_what_is_missing(app, state):
    from MSTKDSegmentLib import PanelSettings

    view = state.view(PanelSettings())
    assert not view.apply_enabled and view.apply_tooltip.startswith("Choose at least one sequence")
    exam = _exam(app)
    view = state.view(PanelSettings(inputs=exam))
    assert view.apply_enabled and view.apply_tooltip == (
        "Segment the tumour from FLAIR + T1Gd with the model 'demo'."
    )
    view = state.view(PanelSettings(inputs={"flair": exam["flair"], "t2": exam["flair"]}))
    assert view.inputs_warning.startswith("FLAIR and T2 are the same volume")
    reference = view.reference
    assert reference.items == (("Automatic (FLAIR)", ""), ("FLAIR: FLAIR", "flair"), ("T2: FLAIR", "t2"))


def test_the_exam_size_counts_registrations_and_the_brain_box(app):
    from MSTKDSegmentLib.volumes import exam_size

    exam = _exam(app)
    size = exam_size(exam, "t1ce")
    assert size.extent_mm == pytest.approx((38.4, 28.0, 36.0))  # background 50 is non-zero
    assert size.voxels == 2 * 32 * 28 * 24 and size.registrations == 0
    padded = np.zeros((30, 40, 50), dtype=np.int16)
    padded[5:15, 10:30, 20:26] = 7
    other = add_volume(app.scene, "T2 sagittal", padded, (0.5, 0.5, 3.0))
    size = exam_size({**exam, "t2": other}, "t2")
    assert size.extent_mm == pytest.approx((3.0, 10.0, 30.0)) and size.registrations == 2
