"""Where the extension's Resources/ folder is: the model registry and the bundled weights.

Looked up in this order: the folder named by $MSTKD_RESOURCES; the repository layout
(Training/mstkd/ beside Resources/); the installed-extension layout (mstkd/ beside Resources/).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List

from mstkd.errors import MSTKDError

ENVIRONMENT_VARIABLE = "MSTKD_RESOURCES"
MODELS_FOLDER = "models"
REGISTRY_FILE = "registry.json"
# The registry entry used where no model is named: the bundled demo model.
DEFAULT_MODEL = "demo"


def candidate_folders() -> List[Path]:
    """The Resources/ folders tried when $MSTKD_RESOURCES is not set, most likely first."""
    package = Path(__file__).resolve().parent
    # Repository: <root>/Training/mstkd -> <root>/Resources; extension: <lib>/mstkd -> <lib>/Resources.
    return [package.parents[1] / "Resources", package.parent / "Resources"]


def resources_dir() -> Path:
    """The Resources/ folder holding models/registry.json, or raise saying how to point to it."""
    configured = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if configured:
        folder = Path(configured).expanduser()
        if not folder.is_dir():
            raise MSTKDError(
                f"${ENVIRONMENT_VARIABLE} is set to {folder}, which is not a folder; point it to the "
                f"extension's Resources folder (the one holding {MODELS_FOLDER}/{REGISTRY_FILE}) or unset it."
            )
        return folder
    candidates = candidate_folders()
    for folder in candidates:
        if (folder / MODELS_FOLDER / REGISTRY_FILE).is_file():
            return folder
    raise MSTKDError(
        f"Cannot find the Resources folder with {MODELS_FOLDER}/{REGISTRY_FILE} (looked in "
        f"{', '.join(str(c) for c in candidates)}); set ${ENVIRONMENT_VARIABLE} to it, or give a model "
        "file path."
    )


def models_dir() -> Path:
    """Resources/models: the registry and the model files it lists by relative name."""
    return resources_dir() / MODELS_FOLDER
