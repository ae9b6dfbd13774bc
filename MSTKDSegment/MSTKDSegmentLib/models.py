"""The models offered in the panel: the entries of Resources/models/registry.json.

Read leniently (name and description only), without importing the engine's inference code,
which needs PyTorch: the panel must open before PyTorch is installed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from mstkd.errors import MSTKDError
from mstkd.resources import REGISTRY_FILE, models_dir


@dataclass(frozen=True)
class ModelChoice:
    """A model the user can pick by name."""

    name: str
    description: str = ""
    intended_use: str = ""


def registry_file() -> Optional[Path]:
    """The registry file the engine uses, or None when there is none."""
    try:
        return models_dir() / REGISTRY_FILE
    except MSTKDError:
        return None


def model_choices(path: Optional[Path] = None) -> List[ModelChoice]:
    """The registry's models (a list of entries, or {"models": [...]}); none if it is absent or unreadable."""
    path = registry_file() if path is None else Path(path)
    if path is None:
        return []
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    entries = data.get("models", []) if isinstance(data, dict) else data
    if not isinstance(entries, list):
        return []
    return [
        ModelChoice(
            name=str(entry["name"]),
            description=str(entry.get("description", "")),
            intended_use=str(entry.get("intended_use", "")),
        )
        for entry in entries
        if isinstance(entry, dict) and entry.get("name")
    ]
