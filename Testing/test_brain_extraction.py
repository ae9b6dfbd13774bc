"""Brain extraction in the engine: when `auto` decides a tool must run, which tool and sequence,
and what a user without any tool is told (real phantoms with and without a head; the tools
themselves are replaced by the phantom's true brain mask, so the test needs neither installed)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import SimpleITK as sitk

from mstkd.cli.main import USER_ERROR_STATUS, main
from mstkd.conventions import sequence_map
from mstkd.errors import MSTKDError
from mstkd.phantom import generate_case, write_phantoms
from mstkd.preprocess.brain_extraction import extract_brain

SHAPE = (64, 64, 40)


@pytest.fixture(scope="module")
def head():
    return generate_case(5, 0, SHAPE, with_skull=True)


@pytest.fixture(scope="module")
def stripped():
    return generate_case(5, 0, SHAPE)


def true_mask(case):
    """A stand-in tool: the phantom's true brain mask, whatever image it is given."""

    def run(extractor, image):
        return case.brain_mask

    return run


def test_auto_leaves_a_skull_stripped_exam_as_it_is(stripped):
    extraction = extract_brain(sequence_map(stripped.images), "auto", true_mask(stripped), lambda e: True)
    assert extraction.method == "none" and extraction.mask is None
    assert extraction.reason.startswith("already skull-stripped")


def test_auto_extracts_a_head_with_the_first_tool_installed_on_a_sequence_it_handles(head):
    images = sequence_map(head.images)
    only_deepbet = extract_brain(images, "auto", true_mask(head), lambda e: e.name == "deepbet")
    assert (only_deepbet.method, only_deepbet.sequence) == ("deepbet", "t1")
    both = extract_brain(images, "auto", true_mask(head), lambda e: True)
    assert both.method == "hd-bet"  # trained on tumour patients' MRI: preferred when installed
    mask = sitk.GetArrayViewFromImage(only_deepbet.mask)
    assert 0 < mask.sum() < mask.size


def test_without_a_tool_a_head_is_refused_with_what_to_install(head):
    images = sequence_map(head.images)
    with pytest.raises(MSTKDError, match="no brain-extraction tool is installed") as refused:
        extract_brain(images, "auto", true_mask(head), lambda e: False)
    assert "pip install hd-bet" in str(refused.value) and "pip install deepbet" in str(refused.value)
    flair_t2 = sequence_map({"flair": head.images["flair"], "t2": head.images["t2"]})
    with pytest.raises(MSTKDError, match="deepbet extracts the brain from T1 or T1Gd only"):
        extract_brain(flair_t2, "auto", true_mask(head), lambda e: e.name == "deepbet")
    with pytest.raises(MSTKDError, match="deepbet was asked for, but it is not installed"):
        extract_brain(images, "deepbet", true_mask(head), lambda e: False)


def test_segment_refuses_an_unstripped_exam_when_no_tool_is_installed(
    tiny_model_file, tmp_path, monkeypatch, capsys
):
    folder = write_phantoms(
        tmp_path / "heads", cases=1, seed=5, shape=SHAPE, show_progress=False, with_skull=True
    )[0]
    files = {s: next(folder.glob(f"*_{s}.nii.gz")) for s in ("flair", "t1", "t2")}
    before = {path: path.read_bytes() for path in files.values()}
    real_find_spec = importlib.util.find_spec
    tools = {"HD_BET", "deepbet"}
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in tools else real_find_spec(name, *a)
    )
    out = tmp_path / "labels.nii.gz"
    arguments = ["segment", *(f"--{s}={p}" for s, p in files.items()), "-o", str(out)]
    status = main([*arguments, "--model", str(tiny_model_file), "--device", "cpu"])
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert status == USER_ERROR_STATUS, message
    assert "no brain-extraction tool is installed" in message and "pip install" in message
    assert not out.exists() and not list(tmp_path.glob(".labels*"))
    assert all(path.read_bytes() == data for path, data in before.items())


def test_a_head_phantom_writes_its_true_brain_mask(tmp_path):
    folder = write_phantoms(tmp_path, cases=1, seed=5, shape=SHAPE, show_progress=False, with_skull=True)[0]
    mask = sitk.ReadImage(str(next((folder / "brainmask").glob("*_brainmask.nii.gz"))))
    flair = sitk.ReadImage(str(next(folder.glob("*_flair.nii.gz"))))
    assert mask.GetSize() == flair.GetSize() and mask.GetSpacing() == flair.GetSpacing()
    inside = sitk.GetArrayViewFromImage(mask) > 0
    assert 0.05 < inside.mean() < 0.8 and np.count_nonzero(sitk.GetArrayViewFromImage(flair)[~inside]) > 0
