"""The Python packages the engine needs: checked from their installed metadata (never by importing them,
which for PyTorch freezes Slicer for seconds), and installed once, after one question.

The requirements and their minimum versions are the engine's (mstkd.conventions). PyTorch comes
from the PyTorch extension, which picks the build for the GPU; everything else is pip-installed
with the installed PyTorch and numpy pinned by a constraints file, so that a package asking for a
newer PyTorch cannot replace its GPU build with a CPU one. A package that was already imported
into Slicer and got upgraded only takes effect after a restart, which is offered.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection, Iterable, List, Optional, Sequence, Tuple

from mstkd.conventions import PHANTOM_REQUIREMENTS, SEGMENT_REQUIREMENTS, Requirement
from mstkd.errors import MSTKDError

TORCH = "torch"
# Installed packages that no installation may change: PyTorch (its build matches the GPU) and numpy
# (Slicer's own modules are built against it).
PINNED = ("torch", "numpy")

VersionOf = Callable[[str], Optional[str]]


@dataclass(frozen=True)
class Problem:
    """A requirement that is not met: missing (`installed` None) or older than its minimum."""

    requirement: Requirement
    installed: Optional[str]

    def describe(self) -> str:
        """'monai>=1.4 (not installed)' or 'monai>=1.4 (1.3.0 installed)'."""
        found = "not installed" if self.installed is None else f"{self.installed} installed"
        return f"{self.requirement.specifier} ({found})"


def installed_version(distribution: str) -> Optional[str]:
    """The installed version of a distribution, from its metadata (nothing is imported), or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        pass
    wanted = _normalise(distribution)
    for found in importlib.metadata.distributions():  # e.g. 'PyYAML' installed as 'pyyaml'
        if _normalise(found.metadata.get("Name") or "") == wanted:
            return found.version
    return None


def version_tuple(version: str) -> Tuple[int, ...]:
    """The release numbers of a version: '2.13.0+cpu' -> (2, 13, 0), '1.4rc1' -> (1, 4)."""
    match = re.match(r"\d+(?:\.\d+)*", version.strip())
    return tuple(int(part) for part in match.group(0).split(".")) if match else ()


def unmet(requirements: Iterable[Requirement], version_of: VersionOf = installed_version) -> List[Problem]:
    """The requirements that are missing or too old, in the order given."""
    problems = []
    for requirement in requirements:
        installed = version_of(requirement.distribution)
        if installed is None or version_tuple(installed) < version_tuple(requirement.minimum):
            problems.append(Problem(requirement, installed))
    return problems


def requirements_for(phantom: bool = False) -> Tuple[Requirement, ...]:
    """What segmenting needs, or (phantom=True) what generating a synthetic exam needs."""
    return PHANTOM_REQUIREMENTS if phantom else SEGMENT_REQUIREMENTS


class DependencyInstaller:
    """Checks and installs the engine's requirements with the collaborators Slicer provides.

    confirm(question) -> bool asks the user once; install_torch(minimum) -> bool installs PyTorch
    (the PyTorch extension); pip_install(arguments) runs `pip install` with a list of arguments;
    offer_restart(packages) offers to restart Slicer; `loaded` are the modules already imported;
    `folder` holds the constraints file.
    """

    def __init__(
        self,
        confirm: Callable[[str], bool],
        install_torch: Callable[[str], bool],
        pip_install: Callable[[List[str]], object],
        offer_restart: Callable[[Sequence[str]], object],
        version_of: VersionOf = installed_version,
        loaded: Optional[Collection[str]] = None,
        folder: Optional[str] = None,
    ) -> None:
        self.confirm = confirm
        self.install_torch = install_torch
        self.pip_install = pip_install
        self.offer_restart = offer_restart
        self.version_of = version_of
        self.loaded = sys.modules if loaded is None else loaded
        self.folder = folder

    def ensure(self, requirements: Sequence[Requirement], ask: bool = True) -> bool:
        """Install what is missing or too old, after one question; True when everything is there.

        Raises MSTKDError when the user declines or an installation does not give what is needed.
        """
        problems = unmet(requirements, self.version_of)
        if not problems:
            return True
        listed = "\n".join(problem.describe() for problem in problems)
        question = (
            "MSTKD Segmentation needs these Python packages, which will now be downloaded and installed "
            f"(this can take a few minutes):\n\n{listed}"
        )
        if ask and not self.confirm(question):
            raise MSTKDError(
                "The required Python packages were not installed: "
                f"{', '.join(p.requirement.specifier for p in problems)}."
            )
        torch = [p for p in problems if p.requirement.distribution == TORCH]
        if torch and not self.install_torch(torch[0].requirement.minimum):
            raise MSTKDError("PyTorch is required and was not installed; see the PyTorch Utils module.")
        others = [p for p in problems if p.requirement.distribution != TORCH]
        if others:
            self._pip_install([p.requirement for p in others])
        importlib.invalidate_caches()
        still = unmet(requirements, self.version_of)
        if still:
            raise MSTKDError(
                "These packages could still not be installed: "
                f"{'; '.join(p.describe() for p in still)}. See the Python console for pip's messages."
            )
        # An upgraded package that Slicer had already imported keeps its old version until a restart.
        stale = [
            p.requirement.distribution
            for p in problems
            if p.installed and p.requirement.module in self.loaded
        ]
        if stale:
            self.offer_restart(stale)
        return True

    def constraints(self) -> List[str]:
        """The pins of the constraints file: each PINNED package at its installed version."""
        pins = []
        for name in PINNED:
            version = self.version_of(name)
            if version is not None:
                pins.append(f"{name}=={version}")
        return pins

    def _pip_install(self, requirements: Sequence[Requirement]) -> None:
        with tempfile.TemporaryDirectory(prefix="mstkd-pip-", dir=self.folder) as scratch:
            constraints = Path(scratch) / "constraints.txt"
            constraints.write_text("\n".join(self.constraints()) + "\n", encoding="utf-8")
            self.pip_install(["-c", str(constraints), *(r.specifier for r in requirements)])


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
