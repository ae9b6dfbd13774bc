"""Static checks: ruff lint, and Python 3.9 compatibility (Slicer 5.8) of all shipped code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_CODE = [ROOT / "Training" / "mstkd", ROOT / "MSTKDSegment"]
LINTED_CODE = [ROOT / "Training", ROOT / "Testing", ROOT / "MSTKDSegment"]
# vermin has no `python -m vermin`; call its entry point so the interpreter running the tests is used.
VERMIN = "import sys; from vermin.main import main; sys.exit(main())"


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True)


def test_ruff_finds_nothing():
    result = run(sys.executable, "-m", "ruff", "check", *[str(p) for p in LINTED_CODE if p.exists()])
    assert result.returncode == 0, result.stdout + result.stderr


def test_shipped_code_runs_on_python_3_9():
    paths = [str(p) for p in SHIPPED_CODE if p.exists()]
    result = run(
        sys.executable,
        "-c",
        VERMIN,
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
