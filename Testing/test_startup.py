"""`mstkd segment` starts fast: a whole run imports none of the libraries only other commands need."""

from __future__ import annotations

import json
import subprocess
import sys

# Each costs from a tenth of a second (nibabel) to seconds (MONAI loads all of these) at start-up.
NOT_FOR_SEGMENT = ("monai", "scipy", "pandas", "sklearn", "matplotlib", "nibabel", "nilearn", "PIL")

RUN_AND_LIST = """
import json, sys
from mstkd.cli.main import main
status = main(sys.argv[1:])
print(json.dumps({"status": status, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def test_a_segment_run_imports_only_what_it_uses(phantom_root, tiny_model_file, tmp_path):
    case = phantom_root / "BraTS2021_00001" / "BraTS2021_00001"
    arguments = ["segment", "--flair", f"{case}_flair.nii.gz", "--t2", f"{case}_t2.nii.gz"]
    arguments += ["-o", str(tmp_path / "labels.nii.gz"), "--model", str(tiny_model_file), "--device", "cpu"]
    done = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST, *arguments], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["status"] == 0 and (tmp_path / "labels.nii.gz").exists()
    assert "torch" in report["modules"] and "SimpleITK" in report["modules"]  # the listing is real
    assert not set(NOT_FOR_SEGMENT) & set(report["modules"])


def test_help_still_lists_every_subcommand():
    from mstkd.cli.main import SUBCOMMANDS

    done = subprocess.run(
        [sys.executable, "-m", "mstkd", "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0
    assert all(command in done.stdout for command in SUBCOMMANDS)
