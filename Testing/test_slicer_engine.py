"""MSTKDSegmentLib with the real engine, a `python -m mstkd segment` process per run or the warm
`python -m mstkd serve`, on a phantom, into a real MRML scene."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

pytest.importorskip("trame_slicer")

from slicer_helpers import real_engine_logic, segment_ids, segment_mask  # noqa: E402


@pytest.mark.parametrize("warm", [False, True], ids=["child", "warm"])
def test_the_real_engine_segments_a_phantom_into_the_scene(tiny_model_file, phantom_root, warm):
    from trame_slicer.core import SlicerApp

    from MSTKDSegmentLib import Progress, read_notes, read_volumes_table

    logic, engine = real_engine_logic(SlicerApp(), warm)
    case_folder = sorted(p for p in phantom_root.iterdir() if p.is_dir())[0]
    case_id, nodes = logic.load_case(case_folder)  # a BraTS 2021 layout
    assert case_id == case_folder.name and list(nodes) == ["flair", "t1", "t1ce", "t2"]
    events = []
    seg = logic.segment(
        {"flair": nodes["flair"], "t1ce": nodes["t1ce"]},
        model=str(tiny_model_file),
        device="cpu",
        nested=True,
        timeout_s=240,
        on_event=events.append,
        brain_mask=True,
    )

    assert segment_ids(seg) == ["MSTKD_NCR", "MSTKD_ED", "MSTKD_ET", "MSTKD_WT", "MSTKD_TC", "MSTKD_BRAIN"]
    masks = {sid: segment_mask(seg, sid, nodes["t1ce"]) for sid in segment_ids(seg)}  # on the reference grid
    np.testing.assert_array_equal(
        masks["MSTKD_WT"], masks["MSTKD_NCR"] | masks["MSTKD_ED"] | masks["MSTKD_ET"]
    )
    assert seg.GetNodeReference(seg.GetReferenceImageGeometryReferenceRole()) is nodes["t1ce"]
    assert seg.GetAttribute("MSTKD.ModelSHA256") == hashlib.sha256(tiny_model_file.read_bytes()).hexdigest()
    assert seg.GetAttribute("MSTKD.Sequences") == "flair,t1ce"
    assert seg.GetAttribute("MSTKD.Reference") == "t1ce"
    volumes = read_volumes_table(seg)
    assert list(volumes) == ["NCR", "ED", "ET", "WT", "TC"]  # the engine's order
    assert volumes["WT"] == pytest.approx(volumes["NCR"] + volumes["ED"] + volumes["ET"], abs=0.05)
    fractions = [e.fraction for e in events if isinstance(e, Progress)]
    assert fractions and fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert not (masks["MSTKD_WT"] & ~masks["MSTKD_BRAIN"]).any()  # the tumour lies in the brain mask
    # The tiny model (two training steps) calls the whole brain tumour: the first note says to check it.
    notes = read_notes(seg)
    assert [n.kind for n in notes] == ["check", "sequences", "brain-extraction", "device"]
    assert "far more than gliomas do" in notes[0].text
    if engine is not None:
        assert engine.ready and engine.starts == 1
        engine.close()


def test_a_request_for_one_pass_or_for_mirroring_reaches_the_warm_engine(tiny_model_file, phantom_root):
    from trame_slicer.core import SlicerApp

    from MSTKDSegmentLib import SegmentationRequest

    logic, engine = real_engine_logic(SlicerApp())
    _, nodes = logic.load_case(sorted(p for p in phantom_root.iterdir() if p.is_dir())[0])
    inference = {}
    for axes in ("xy", None):
        request = SegmentationRequest({"t2": nodes["t2"]}, str(tiny_model_file), "cpu", mirror_axes=axes)
        run = logic.start(request)
        assert run.wait(240)
        run.finish()
        inference[axes] = next(step for step in run.summary["steps"] if "sliding-window" in step)
    engine.close()
    assert "mirrored along x, y" in inference["xy"]
    assert "mirrored" not in inference[None], "the next request segments as the model file says"
