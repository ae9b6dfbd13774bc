"""`mstkd segment` on phantom files with a real tiny model: outputs, the jsonl contract, errors, batches."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import SimpleITK as sitk

from mstkd.cli import main as cli_main
from mstkd.cli.main import USER_ERROR_STATUS, main
from mstkd.files import sha256_of
from mstkd.imageio import image_to_array

CASE = "BraTS2021_00002"


def case_file(root, sequence, case=CASE):
    return root / case / f"{case}_{sequence}.nii.gz"


def test_one_exam_writes_labels_on_the_reference_grid_and_a_summary(
    phantom_root, tiny_model_file, tmp_path, capsys
):
    out, summary = tmp_path / "labels.nii.gz", tmp_path / "summary.json"
    status = main(
        [
            "segment",
            "--t1gd",
            str(case_file(phantom_root, "t1ce")),
            "--flair",
            str(case_file(phantom_root, "flair")),
            "-o",
            str(out),
            "--summary",
            str(summary),
            "--model",
            str(tiny_model_file),
            "--device",
            "cpu",
            "--labels",
            "brats2023",
        ]
    )
    assert status == 0
    labels, reference = sitk.ReadImage(str(out)), sitk.ReadImage(str(case_file(phantom_root, "t1ce")))
    assert labels.GetSize() == reference.GetSize() and labels.GetSpacing() == reference.GetSpacing()
    assert labels.GetOrigin() == reference.GetOrigin() and labels.GetDirection() == reference.GetDirection()
    values = image_to_array(labels)
    assert set(np.unique(values)) <= {0, 1, 2, 3}
    data = json.loads(summary.read_text())
    assert set(data) == {
        "written_by", "output", "reference", "sequences", "model", "device", "labels", "volumes_ml",
        "timings_s", "steps", "warnings", "notes", "brain_extraction", "trust",
    }  # fmt: skip
    # The tiny model (two training steps) calls the whole brain tumour: the one warning says so.
    assert data["written_by"] == "mstkd segment"
    assert [w for w in data["warnings"] if not w.startswith("The whole tumour fills")] == []
    assert data["output"] == str(out) and data["reference"] == "t1ce" and data["labels"] == "brats2023"
    assert data["sequences"] == ["flair", "t1ce"] and data["device"] == "cpu"
    assert data["model"] == {
        "name": "student",
        "path": str(tiny_model_file),
        "sha256": sha256_of(tiny_model_file),
    }
    assert set(data["volumes_ml"]) == {"NCR", "ED", "ET", "WT", "TC"}
    voxel_ml = float(np.prod(labels.GetSpacing())) / 1000.0
    assert data["volumes_ml"]["WT"] == pytest.approx((values > 0).sum() * voxel_ml, abs=1e-3)
    assert {"read", "brain_extraction", "preprocess", "inference", "postprocess", "write", "total"} == set(
        data["timings_s"]
    )
    assert data["steps"] and not list(tmp_path.glob(".*"))  # no temporary file left behind
    printed = capsys.readouterr().out
    assert f"Wrote {out}" in printed and "Volumes (mL)" in printed


def test_jsonl_progress_is_all_that_stdout_carries(phantom_root, tiny_model_file, tmp_path):
    out = tmp_path / "labels.nrrd"
    command = [sys.executable, "-m", "mstkd", "segment", "--t2", str(case_file(phantom_root, "t2"))]
    command += ["-o", str(out), "--model", str(tiny_model_file), "--device", "cpu", "--progress", "jsonl"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    events = [json.loads(line) for line in lines]
    assert all(set(e) - {"remaining_s"} == {"stage", "fraction", "message"} for e in events)
    # The inference stage's own estimate is a field, not part of the message for people.
    assert any("remaining_s" in e for e in events) and not any("left" in e["message"] for e in events)
    fractions = [e["fraction"] for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and fractions[0] >= 0.0
    assert [e["stage"] for e in events][-1] == "write" and "infer" in {e["stage"] for e in events}
    assert out.is_file() and f"Wrote {out}" in done.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ([], "Give at least one sequence"),
        (["--flair", "{missing}"], "Image file not found"),
        (["--flair", "{flair}", "--model", "no-such-model"], "'no-such-model' is neither a model file nor"),
        (["--flair", "{flair}", "--model", "{truncated}"], "not a readable mstkd checkpoint"),
        (["--flair", "{flair}", "--reference", "t1ce"], "reference 't1ce' .* is not among the inputs"),
        (["--flair", "{flair}", "-o", "{out}.png"], "name it with one of .nii.gz"),
    ],
)
def test_user_errors_exit_2_with_a_message(
    phantom_root, tiny_model_file, tmp_path, capsys, arguments, message
):
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(tiny_model_file.read_bytes()[:-100])
    names = {
        "missing": tmp_path / "missing_flair.nii.gz",
        "flair": case_file(phantom_root, "flair"),
        "truncated": truncated,
        "out": tmp_path / "labels",
    }
    filled = [a.format(**names) for a in arguments]
    if "-o" not in filled:
        filled += ["-o", str(tmp_path / "labels.nii.gz")]
    if "--model" not in filled:
        filled += ["--model", str(tiny_model_file)]
    status = main(["segment", *filled, "--device", "cpu", "--progress", "jsonl"])
    captured = capsys.readouterr()
    assert status == USER_ERROR_STATUS
    assert captured.err.startswith("mstkd segment: error: ") and re.search(message, captured.err)
    assert not (tmp_path / "labels.nii.gz").exists()
    assert all(json.loads(line) for line in captured.out.splitlines())  # stdout stays JSON lines only


def test_a_tampered_model_file_is_refused_by_its_registry_checksum(
    phantom_root, tiny_model_file, tmp_path, capsys, monkeypatch
):
    resources = tmp_path / "Resources" / "models"
    resources.mkdir(parents=True)
    payload = bytearray(tiny_model_file.read_bytes())
    entry = {
        "name": "tiny",
        "file": "tiny.safetensors",
        "sha256": sha256_of(tiny_model_file),
        "size": len(payload),
        "spacing": [3.75, 3.75, 3.75],
        "training_data": "phantoms",
        "intended_use": "tests",
        "description": "tiny",
    }
    (resources / "registry.json").write_text(json.dumps({"format_version": 1, "models": [entry]}))
    payload[-1] ^= 0x01  # one flipped bit, where a parser would not notice
    (resources / "tiny.safetensors").write_bytes(bytes(payload))
    monkeypatch.setenv("MSTKD_RESOURCES", str(resources.parent))
    for model in ("tiny", str(resources / "tiny.safetensors")):  # by name, and by the registry file's path
        status = main(
            ["segment", "--flair", str(case_file(phantom_root, "flair")), "-o", str(tmp_path / "l.nii.gz")]
            + ["--model", model, "--device", "cpu"]
        )
        assert status == USER_ERROR_STATUS
        assert "does not match the sha256 recorded for 'tiny'" in capsys.readouterr().err
    assert not (tmp_path / "l.nii.gz").exists()


def test_a_batch_writes_every_case_resumes_and_reports_failures(
    phantom_root, tiny_model_file, tmp_path, capsys
):
    inputs, outputs = tmp_path / "cases", tmp_path / "predictions"
    for case in ("BraTS2021_00003", "BraTS2021_00004"):
        shutil.copytree(phantom_root / case, inputs / case)
    (inputs / "Broken").mkdir()
    (inputs / "Broken" / "Broken_flair.nii.gz").write_bytes(b"not an image")
    (inputs / "Broken" / "Broken_t2.nii.gz").write_bytes(b"not an image")

    def batch() -> int:
        return main(
            ["segment", "--input-dir", str(inputs), "--output-dir", str(outputs), "--sequences", "flair,t2"]
            + ["--model", str(tiny_model_file), "--device", "cpu"]
        )

    assert batch() == 1  # one case failed, the others were done
    first = capsys.readouterr()
    assert "2 case(s) segmented, 0 skipped (already written), 1 failed" in first.out
    assert "case Broken:" in first.err
    written = {p.name for p in outputs.iterdir()}
    assert written == {f"BraTS2021_0000{i}.{ext}" for i in (3, 4) for ext in ("nii.gz", "json")}
    assert json.loads((outputs / "BraTS2021_00003.json").read_text())["sequences"] == ["flair", "t2"]
    kept = outputs / "BraTS2021_00003.nii.gz"
    redone = outputs / "BraTS2021_00004.nii.gz"
    kept_time = kept.stat().st_mtime_ns
    redone.unlink()
    shutil.rmtree(inputs / "Broken")

    assert batch() == 0
    second = capsys.readouterr()
    assert "1 case(s) segmented, 1 skipped (already written), 0 failed" in second.out
    assert "BraTS2021_00003: skipped" in second.err and "BraTS2021_00004: wrote" in second.err
    assert kept.stat().st_mtime_ns == kept_time and redone.is_file()


def test_a_batch_killed_midway_finishes_on_restart_without_redoing_cases(
    phantom_root, tiny_model_file, tmp_path, capsys
):
    inputs, outputs = tmp_path / "cases", tmp_path / "predictions"
    cases = sorted(p.name for p in phantom_root.iterdir() if p.is_dir())[:4]
    for case in cases:
        shutil.copytree(phantom_root / case, inputs / case)
    arguments = ["segment", "--input-dir", str(inputs), "--output-dir", str(outputs)]
    arguments += ["--model", str(tiny_model_file), "--device", "cpu"]
    running = subprocess.Popen([sys.executable, "-m", "mstkd", *arguments], stderr=subprocess.DEVNULL)
    first = outputs / f"{cases[0]}.nii.gz"
    deadline = time.monotonic() + 120
    while not first.exists() and running.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    running.kill()  # as a power cut would: no handler, no clean-up
    running.wait(timeout=60)
    finished = {p.name: p.stat().st_mtime_ns for p in outputs.glob("*.nii.gz")}
    assert first.name in finished and len(finished) < len(cases)
    # What a kill in the middle of writing a label map leaves, and one another run is writing now.
    left_by_the_killed_run = outputs / f".{cases[-1]}.partial-{running.pid}.nii.gz"
    being_written = outputs / f".{cases[-1]}.partial-{os.getppid()}.nii.gz"
    for partial in (left_by_the_killed_run, being_written):
        partial.write_bytes(b"half a label map")

    assert main(arguments) == 0
    printed = capsys.readouterr()
    assert f"{len(cases) - len(finished)} case(s) segmented, {len(finished)} skipped" in printed.out
    assert f"removed {left_by_the_killed_run.name}, half-written by an interrupted run" in printed.err
    assert not left_by_the_killed_run.exists() and being_written.exists()
    for case in cases:
        assert sitk.ReadImage(str(outputs / f"{case}.nii.gz")).GetSize() == (64, 64, 48)
        assert json.loads((outputs / f"{case}.json").read_text())["sequences"]
    assert {name: (outputs / name).stat().st_mtime_ns for name in finished} == finished


def test_without_t1gd_the_output_and_summary_say_enhancing_tumour_is_unreliable(
    phantom_root, tiny_model_file, tmp_path, capsys
):
    out, summary = tmp_path / "labels.nii.gz", tmp_path / "summary.json"
    arguments = [
        "segment",
        "--flair",
        str(case_file(phantom_root, "flair")),
        "--t2",
        str(case_file(phantom_root, "t2")),
    ]
    arguments += [
        "-o",
        str(out),
        "--summary",
        str(summary),
        "--model",
        str(tiny_model_file),
        "--device",
        "cpu",
    ]
    assert main(arguments) == 0
    printed = capsys.readouterr().out
    trust = json.loads(summary.read_text())["trust"]
    unreliable = [w for w in trust["warnings"] if w.startswith("ET from FLAIR+T2")]
    assert unreliable and "shown, but unreliable" in unreliable[0]
    assert f"Warning: {unreliable[0]}" in printed


def test_a_segment_process_that_skips_teardown_still_reports_its_error_and_status(tmp_path):
    missing = tmp_path / "missing.nii.gz"
    command = [
        sys.executable,
        "-m",
        "mstkd",
        "segment",
        "--flair",
        str(missing),
        "-o",
        str(tmp_path / "l.nii.gz"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == USER_ERROR_STATUS
    assert (
        done.stderr.splitlines()[-1]
        == f"mstkd segment: error: Image file not found: {missing}. Check the path."
    )
    assert not list(tmp_path.iterdir())


def test_teardown_is_only_skipped_when_nothing_else_runs(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    release = threading.Event()
    worker = threading.Thread(target=release.wait)
    worker.start()
    try:
        assert not cli_main._nothing_left_running()
    finally:
        release.set()
        worker.join()
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert not cli_main._nothing_left_running()
