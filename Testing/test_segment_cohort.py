"""`torchrun -m mstkd segment --input-dir ...`: cases shared among processes (gloo on the CPU), resumable."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from mstkd.cli.main import main

CASES = [f"BraTS2021_0000{i}" for i in range(6)]  # the session's phantom_root


def torchrun_segment(phantom_root: Path, out: Path, model: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += ["-m", "mstkd", "segment", "--input-dir", str(phantom_root), "--output-dir", str(out)]
    command += ["--model", str(model), "--device", "cpu"]
    done = subprocess.run(
        command, capture_output=True, text=True, encoding="utf-8", timeout=600, env={**os.environ}
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def per_rank(printed: str) -> dict:
    """{rank: (segmented, skipped, failed)} from each rank's closing line."""
    found = re.findall(
        r"rank (\d) of 2: (\d+) case\(s\) segmented, (\d+) skipped \(already written\), (\d+) failed", printed
    )
    return {int(rank): tuple(int(n) for n in counts) for rank, *counts in found}


def labels(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_two_processes_share_the_cases_and_resume_like_one(phantom_root, tiny_model_file, tmp_path):
    single, shared = tmp_path / "single", tmp_path / "shared"
    arguments = [
        "segment",
        "--input-dir",
        str(phantom_root),
        "--model",
        str(tiny_model_file),
        "--device",
        "cpu",
    ]
    assert main([*arguments, "--output-dir", str(single)]) == 0

    first = torchrun_segment(phantom_root, shared, tiny_model_file)
    assert per_rank(first.stdout) == {0: (3, 0, 0), 1: (3, 0, 0)}  # every case once, half each
    written = re.findall(r"rank (\d) of 2: (BraTS2021_\d+): wrote", first.stderr)
    assert sorted(case for _, case in written) == CASES
    for case in CASES:
        assert np.array_equal(labels(shared / f"{case}.nii.gz"), labels(single / f"{case}.nii.gz")), case
        assert (shared / f"{case}.json").exists()

    # An interrupted cohort: two label maps missing and a file half-written by a dead process.
    for case in CASES[1:3]:
        (shared / f"{case}.nii.gz").unlink()
    stale = shared / ".BraTS2021_00004.partial-999999999.nii.gz"
    stale.write_bytes(b"half")
    again = torchrun_segment(phantom_root, shared, tiny_model_file)
    assert per_rank(again.stdout) == {0: (1, 4, 0), 1: (1, 0, 0)}  # rank 0 reports the skipped ones
    assert not stale.exists()
    for case in CASES:
        assert np.array_equal(labels(shared / f"{case}.nii.gz"), labels(single / f"{case}.nii.gz")), case


def test_one_exam_under_torchrun_is_refused(phantom_root, tiny_model_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    flair = phantom_root / CASES[0] / f"{CASES[0]}_flair.nii.gz"
    status = main(
        ["segment", "--flair", str(flair), "-o", str(tmp_path / "l.nii.gz"), "--model", str(tiny_model_file)]
    )
    assert status == 2
    assert "torchrun shares the cases of a folder" in capsys.readouterr().err
