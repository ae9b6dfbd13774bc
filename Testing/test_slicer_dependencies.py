"""Checking and installing the engine's packages (MSTKDSegmentLib.dependencies): from metadata, one
question, PyTorch and numpy pinned (checked with the real pip), a restart offered when needed."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from slicer_helpers import MODULE_DIR

from mstkd.conventions import PHANTOM_REQUIREMENTS, SEGMENT_REQUIREMENTS, Requirement
from mstkd.errors import MSTKDError


class Versions:
    """Installed versions that an installation changes: the stand-in for package metadata."""

    def __init__(self, **installed) -> None:
        self.installed = {name.lower(): version for name, version in installed.items()}

    def __call__(self, distribution: str):
        return self.installed.get(distribution.lower())


class Recorder:
    """Records what the installer asked for; `install` says what each call puts in place."""

    def __init__(self, versions: Versions, answer: bool = True) -> None:
        self.versions = versions
        self.answer = answer
        self.questions, self.torch, self.pip, self.constraints, self.restarts = [], [], [], [], []

    def confirm(self, question: str) -> bool:
        self.questions.append(question)
        return self.answer

    def install_torch(self, minimum: str) -> bool:
        self.torch.append(minimum)
        self.versions.installed["torch"] = "2.5.1+cu124"
        return True

    def pip_install(self, arguments) -> None:
        self.pip.append(list(arguments))
        self.constraints.append(Path(arguments[1]).read_text().split())
        for specifier in arguments[2:]:
            name, floor = specifier.split(">=")
            self.versions.installed[name.lower()] = floor + ".0"

    def installer(self, **kwargs):
        from MSTKDSegmentLib import DependencyInstaller

        return DependencyInstaller(
            self.confirm,
            self.install_torch,
            self.pip_install,
            self.restarts.append,
            version_of=self.versions,
            **kwargs,
        )


def test_the_check_reads_metadata_and_imports_nothing():
    code = (
        f"import sys; sys.path.insert(0, {str(MODULE_DIR)!r}); "
        "from MSTKDSegmentLib import requirements_for, unmet; "
        "problems = unmet(requirements_for()) + unmet(requirements_for(phantom=True)); "
        "imported = sorted(m for m in ('torch', 'monai', 'scipy') if m in sys.modules); "
        "print([p.describe() for p in problems], imported)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[] []", done.stderr  # all installed here, and none of them imported


def test_missing_and_too_old_packages_are_found():
    from MSTKDSegmentLib import unmet
    from MSTKDSegmentLib.dependencies import version_tuple

    versions = Versions(torch="2.13.0+cpu", monai="1.3.2", SimpleITK="2.4.0", numpy="2.1.0", scipy="1.10")
    problems = unmet(SEGMENT_REQUIREMENTS, versions)
    assert [p.describe() for p in problems][:2] == [
        "monai>=1.4 (1.3.2 installed)",
        "safetensors>=0.4 (not installed)",
    ]
    assert version_tuple("2.13.0+cpu") == (2, 13, 0) and version_tuple("1.4rc1") == (1, 4)
    assert version_tuple("1.10") > version_tuple("1.9")


def test_one_question_then_pytorch_from_its_extension_and_the_rest_pinned(tmp_path):
    versions = Versions(numpy="1.26.4", SimpleITK="2.4.0", scipy="1.9.0", tqdm="4.66.1", psutil="6.0")
    recorder = Recorder(versions)
    loaded = {"numpy", "scipy", "SimpleITK"}  # what Slicer has imported already

    assert recorder.installer(loaded=loaded, folder=str(tmp_path)).ensure(SEGMENT_REQUIREMENTS) is True

    assert len(recorder.questions) == 1
    for line in ("torch>=2.4 (not installed)", "monai>=1.4 (not installed)", "scipy>=1.10 (1.9.0 installed)"):
        assert line in recorder.questions[0]
    assert recorder.torch == ["2.4"]  # PyTorch first, from the PyTorch extension
    assert recorder.pip == [
        ["-c", recorder.pip[0][1], "monai>=1.4", "scipy>=1.10", "safetensors>=0.4", "PyYAML>=6"]
    ]
    # The PyTorch just installed (and Slicer's numpy) may not change while the rest is installed.
    assert recorder.constraints == [["torch==2.5.1+cu124", "numpy==1.26.4"]]
    assert recorder.restarts == [["scipy"]]  # upgraded while loaded: a restart is offered
    assert list(tmp_path.iterdir()) == []  # the constraints file is gone


def test_declining_installs_nothing_and_an_installation_that_falls_short_is_reported():
    recorder = Recorder(Versions(numpy="1.26.4"), answer=False)
    with pytest.raises(MSTKDError, match="were not installed: nilearn>=0.10, scipy>=1.10, tqdm>=4.66"):
        recorder.installer().ensure(PHANTOM_REQUIREMENTS)
    assert recorder.pip == [] and recorder.torch == []

    recorder = Recorder(Versions(), answer=True)
    recorder.pip_install = lambda arguments: None  # pip ran, but nothing got installed
    with pytest.raises(MSTKDError, match="could still not be installed: nilearn>=0.10 \\(not installed\\)"):
        recorder.installer().ensure(PHANTOM_REQUIREMENTS)
    recorder = Recorder(Versions())
    recorder.install_torch = lambda minimum: False
    with pytest.raises(MSTKDError, match="PyTorch is required and was not installed"):
        recorder.installer().ensure(SEGMENT_REQUIREMENTS)
    assert Recorder(Versions()).installer().ensure([], ask=False) is True


def _wheel(folder: Path, name: str, version: str, requires=()) -> None:
    """A minimal pure-Python wheel."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": "",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{path},,\n" for path in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as wheel:
        for path, text in files.items():
            wheel.writestr(path, text)


def test_pip_keeps_the_installed_pytorch_when_a_package_wants_another(tmp_path):
    """With the real pip: a package asking for a newer PyTorch would replace the installed build;
    the installer's constraints file makes pip refuse instead."""
    from MSTKDSegmentLib import DependencyInstaller
    from MSTKDSegmentLib.dependencies import installed_version

    index = tmp_path / "index"
    index.mkdir()
    _wheel(index, "torch", "99.0")
    _wheel(index, "wantsnewtorch", "1.0", ["torch>=99"])
    pip = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--find-links", str(index)]
    # Only this index and these constraints: none of the machine's pip configuration.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull

    unpinned = subprocess.run([*pip, "wantsnewtorch"], capture_output=True, text=True, timeout=300, env=env)
    assert unpinned.returncode == 0 and "torch-99.0" in unpinned.stdout, unpinned.stderr

    runs = []

    def pip_install(arguments):
        runs.append(subprocess.run([*pip, *arguments], capture_output=True, text=True, timeout=300, env=env))

    installer = DependencyInstaller(lambda q: True, lambda m: True, pip_install, print, folder=str(tmp_path))
    with pytest.raises(MSTKDError, match="could still not be installed"):
        installer.ensure([Requirement("wantsnewtorch", "wantsnewtorch", "1.0")])
    assert runs[0].returncode != 0 and "torch-99.0" not in runs[0].stdout
    assert f"torch=={installed_version('torch')}" in runs[0].stdout + runs[0].stderr
