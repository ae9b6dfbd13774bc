"""What the engine says about a result, on a real MRML scene: unreliable regions marked, the brain mask.

The engine is the protocol double of `mstkd segment` (its trust is the engine's generic rule:
no T1Gd, enhancing tumour unreliable); test_slicer_engine.py runs the real command.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("trame_slicer")

from slicer_helpers import add_volume, double_logic, segment_mask, tumour_array  # noqa: E402


@pytest.fixture
def app():
    from trame_slicer.core import SlicerApp

    return SlicerApp()


@pytest.fixture
def logic(app, tmp_path):
    return double_logic(app, tmp_path)


def exam(app):
    """FLAIR, T2 and T1Gd of one grid."""
    grid = ((1.2, 1.0, 1.5), (5.0, -3.0, 2.0))
    return {
        "flair": add_volume(app.scene, "FLAIR", tumour_array() // 2, *grid),
        "t2": add_volume(app.scene, "T2", tumour_array(), *grid),
        "t1ce": add_volume(app.scene, "T1 post Gd", tumour_array(), *grid),
    }


def names(segmentation_node):
    segmentation = segmentation_node.GetSegmentation()
    return {
        segmentation.GetNthSegmentID(i): segmentation.GetNthSegment(i).GetName()
        for i in range(segmentation.GetNumberOfSegments())
    }


def reliability(segmentation_node, segment_id):
    from vtkmodules.vtkCommonCore import reference

    from MSTKDSegmentLib import RELIABILITY_TAG

    value = reference("")
    segmentation_node.GetSegmentation().GetSegment(segment_id).GetTag(RELIABILITY_TAG, value)
    return str(value)


def notes_of(segmentation_node):
    """The notes kept on the node, by kind: [(level, text), ...]."""
    from MSTKDSegmentLib import read_notes

    found = {}
    for note in read_notes(segmentation_node):
        found.setdefault(note.kind, []).append((note.level, note.text))
    return found


def test_segments_of_unreliable_regions_are_marked_and_unmarked_by_the_next_run(app, logic):
    from MSTKDSegmentLib import UNRELIABLE_SUFFIX, SegmentationRequest, format_notes, read_notes

    volumes = exam(app)
    run = logic.start(SegmentationRequest({"flair": volumes["flair"], "t2": volumes["t2"]}, nested=True))
    assert run.wait(60)
    seg = run.finish()

    marked = names(seg)
    assert marked["MSTKD_ET"] == "Enhancing tumour (ET)" + UNRELIABLE_SUFFIX
    assert UNRELIABLE_SUFFIX == " (unreliable)"
    assert not any(
        marked[i].endswith(UNRELIABLE_SUFFIX) for i in ("MSTKD_NCR", "MSTKD_ED", "MSTKD_WT", "MSTKD_TC")
    )
    assert "ET from FLAIR+T2" in reliability(seg, "MSTKD_ET") and "unreliable" in reliability(seg, "MSTKD_ET")
    assert "not assessed" in reliability(seg, "MSTKD_WT")
    assert "ET from FLAIR+T2" in seg.GetAttribute("MSTKD.Unreliable")
    trust = notes_of(seg)["trust"]
    assert trust and all(level == "warning" for level, _ in trust)
    assert any(text.startswith("ET from FLAIR+T2") for _, text in trust)
    assert notes_of(seg)["brain-extraction"] == [("info", "none (the double strips nothing)")]
    assert read_notes(seg)[0].kind == "trust"  # warnings come first
    assert "Warning - Trust: ET from FLAIR+T2" in format_notes(read_notes(seg))

    # The user renames the segment; a run with T1Gd takes the mark off and keeps the new name.
    seg.GetSegmentation().GetSegment("MSTKD_ET").SetName("Rim" + UNRELIABLE_SUFFIX)
    logic.segment(volumes, segmentation=seg, nested=True)
    assert names(seg)["MSTKD_ET"] == "Rim"
    assert "not assessed" in reliability(seg, "MSTKD_ET") and seg.GetAttribute("MSTKD.Unreliable") == ""
    assert "trust" not in notes_of(seg)
    # ... and a run without it puts the mark back on the user's name.
    logic.segment({"t2": volumes["t2"]}, segmentation=seg)
    assert names(seg)["MSTKD_ET"] == "Rim" + UNRELIABLE_SUFFIX


def test_the_brain_mask_is_a_segment_of_its_own_on_request(app, logic):
    from MSTKDSegmentLib import BRAIN_SEGMENT, SegmentationRequest

    volumes = exam(app)
    run = logic.start(SegmentationRequest(volumes, brain_extraction="deepbet", brain_mask=True))
    assert run.wait(60)
    seg = run.finish()
    mask = segment_mask(seg, BRAIN_SEGMENT.segment_id, volumes["t1ce"])
    np.testing.assert_array_equal(mask, tumour_array() > 100)  # the double's mask: the reference above 100
    display = seg.GetDisplayNode()
    assert not display.GetSegmentVisibility2DFill(BRAIN_SEGMENT.segment_id)  # an outline over the images
    brain_ml = (tumour_array() > 100).sum() * 1.2 * 1.0 * 1.5 / 1000
    assert notes_of(seg)["brain-extraction"] == [
        ("info", f"deepbet on T1Gd, 0.5 s (brain {brain_ml:.0f} mL)")
    ]

    logic.segment(volumes, segmentation=seg)  # brain_mask off by default: the segment goes
    assert BRAIN_SEGMENT.segment_id not in names(seg)
    with pytest.raises(Exception, match="Unknown brain extraction 'bet'"):
        logic.start(SegmentationRequest(volumes, brain_extraction="bet"))
