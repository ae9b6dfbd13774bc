"""The warm engine's service (MSTKDSegmentLib.service) with the protocol double as its engine: one
process for many runs, restarted when it died, requests in order, ended when closed."""

from __future__ import annotations

import pytest

pytest.importorskip("trame_slicer")
psutil = pytest.importorskip("psutil")

from slicer_helpers import (  # noqa: E402
    add_volume,
    double_engine,
    process_gone,
    segment_ids,
    tumour_array,
    wait_until,
)


@pytest.fixture
def app():
    from trame_slicer.core import SlicerApp

    return SlicerApp()


@pytest.fixture
def engine():
    service = double_engine("warm")
    yield service
    service.close()


@pytest.fixture
def logic(app, engine, tmp_path):
    from MSTKDSegmentLib import SegmentationLogic

    return SegmentationLogic(
        app.scene, app.segmentations_logic, app.volumes_logic, engine=engine, work_folder=str(tmp_path)
    )


def _exam(app):
    return {
        "flair": add_volume(app.scene, "FLAIR", tumour_array() // 2),
        "t1ce": add_volume(app.scene, "T1ce", tumour_array()),
    }


def test_runs_share_one_engine_which_is_restarted_when_it_died(app, logic, engine):
    exam = _exam(app)
    first = logic.segment(exam, model="demo")
    pid = engine.pid
    assert engine.ready and engine.starts == 1
    second = logic.segment(exam, model="demo", segmentation=first)
    assert second is first and engine.pid == pid and engine.starts == 1  # warm: no new process

    psutil.Process(pid).kill()  # the engine dies between runs (e.g. killed by the system)
    assert wait_until(lambda: not engine.alive)
    again = logic.segment(exam, model="demo")
    assert segment_ids(again) == ["MSTKD_NCR", "MSTKD_ED", "MSTKD_ET"]
    assert engine.starts == 2 and engine.pid != pid


def test_requests_are_answered_in_order_and_closing_ends_the_engine(app, logic, engine):
    from MSTKDSegmentLib import SegmentationRequest

    check = engine.check_device("demo", "cpu")
    run = logic.start(SegmentationRequest(_exam(app), model="demo"))  # sent while the check is pending
    assert check.wait(60) == 0 and check.reply["device"]["requested"] == "cpu"
    assert wait_until(lambda: run.finished, 60) and run.finish().IsA("vtkMRMLSegmentationNode")

    slow = logic.start(SegmentationRequest(_exam(app), model="slow"))
    assert wait_until(lambda: slow.poll() is not None and slow.progress is not None)
    pid = engine.pid
    engine.close()  # Slicer quits in the middle of a run
    assert slow.finished and slow.cancelled
    assert wait_until(lambda: process_gone(pid))
