"""Static checks: ruff lint, and Python 3.9 compatibility (Slicer 5.8) of all shipped code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_CODE = [ROOT / "Training" / "mstkd", ROOT / "MSTKDSegment"]


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True)


def test_ruff_finds_nothing():
    result = run(sys.executable, "-m", "ruff", "check", "Training", "Testing", "MSTKDSegment")
    assert result.returncode == 0, result.stdout + result.stderr


def test_shipped_code_runs_on_python_3_9():
    paths = [str(p) for p in SHIPPED_CODE if p.exists()]
    result = run(
        str(Path(sys.executable).with_name("vermin")),
        "-t=3.9-",
        "--violations",
        "--no-tips",
        "--eval-annotations",
        "--backport",
        "typing_extensions",
        *paths,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = ci.strip().splitlines()[-1]
    assert command in readme
