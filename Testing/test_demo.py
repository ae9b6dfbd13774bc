"""`mstkd demo` with the tiny model on a small phantom: label map, summary, picture, Dice."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import SimpleITK as sitk

from mstkd.cli.main import USER_ERROR_STATUS, main
from mstkd.imageio import image_to_array


def test_the_demo_writes_labels_summary_and_picture_and_prints_dice(tiny_model_file, tmp_path, capsys):
    out = tmp_path / "demo"
    status = main(
        ["demo", "--out", str(out), "--model", str(tiny_model_file), "--device", "cpu", "--shape", "64,64,48"]
    )
    assert status == 0
    printed = capsys.readouterr().out
    assert "from FLAIR+T2" in printed and "Dice against the ground truth" in printed
    assert "Warning: ET from FLAIR+T2" in printed, "enhancement without T1Gd is flagged"
    for region in ("WT", "TC", "ET"):
        assert f" {region} " in printed.split("Dice against the ground truth")[1].splitlines()[0]
    for name in ("labels.nii.gz", "summary.json", "preview.png"):
        assert (out / name).is_file() and str(out / name) in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sequences"] == ["flair", "t2"] and set(summary["dice"]) == {"WT", "TC", "ET"}
    assert all(0.0 <= value <= 1.0 for value in summary["dice"].values())
    truth = next(out.glob("*/*_seg.nii.gz"))
    labels, reference = sitk.ReadImage(str(out / "labels.nii.gz")), sitk.ReadImage(str(truth))
    assert labels.GetSize() == reference.GetSize() == (64, 64, 48)
    assert labels.GetOrigin() == reference.GetOrigin() and labels.GetSpacing() == reference.GetSpacing()
    assert set(np.unique(image_to_array(labels))) <= {0, 1, 2, 4}
    assert (out / "preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_demo_without_its_model_says_what_the_registry_holds(tmp_path, capsys, monkeypatch):
    models = tmp_path / "Resources" / "models"
    models.mkdir(parents=True)
    (models / "registry.json").write_text(json.dumps({"format_version": 1, "models": []}))
    monkeypatch.setenv("MSTKD_RESOURCES", str(models.parent))
    assert main(["demo", "--out", str(tmp_path / "demo"), "--shape", "64,64,48"]) == USER_ERROR_STATUS
    assert "'demo' is neither a model file nor a model in the registry" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()  # the model is checked before any work


def test_the_main_job_as_the_readme_runs_it_segments_the_full_size_exam_well(tmp_path):
    out = tmp_path / "mstkd-demo"
    command = [sys.executable, "-m", "mstkd", "demo", "--out", str(out)]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"]["name"] == "demo" and summary["sequences"] == ["flair", "t2"]
    # Measured with the bundled model: WT 0.90, TC 0.79, ET 0.57 (FLAIR + T2 hardly show enhancement).
    assert summary["dice"]["WT"] > 0.75 and summary["dice"]["TC"] > 0.4, summary["dice"]
    # Its own out-of-distribution table marks the enhancement from FLAIR + T2 unreliable.
    assert summary["trust"]["unreliable"] == ["ET"]
    assert "Warning: ET from FLAIR+T2: validation Dice 0.30 - shown, but unreliable" in finished.stdout
    assert sitk.ReadImage(str(out / "labels.nii.gz")).GetSize() == (240, 240, 155)


def test_the_demo_refuses_a_read_only_folder_and_a_users_file_before_any_work(tmp_path, capsys, monkeypatch):
    from faults import no_model, read_only

    no_model(monkeypatch)
    out = tmp_path / "demo"
    out.mkdir()
    with read_only(out):
        assert main(["demo", "--out", str(out), "--shape", "64,64,48"]) == USER_ERROR_STATUS
    assert "read-only file system" in capsys.readouterr().err
    (out / "preview.png").write_bytes(b"\x89PNG my own picture")
    assert main(["demo", "--out", str(out), "--shape", "64,64,48"]) == USER_ERROR_STATUS
    assert "preview.png exists and is not a picture written by mstkd" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["preview.png"]
