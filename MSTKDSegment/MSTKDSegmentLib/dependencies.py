"""Python packages the engine needs at run time, checked without importing them.

Slicer's Python ships numpy and SimpleITK; PyTorch comes from the PyTorch extension (it picks the
right CUDA build; mstkd.conventions.TORCH_VERSION_FLOOR), the rest is pip-installed on first use
after asking the user. The versions are pyproject.toml's (a test checks).
"""

from __future__ import annotations

import importlib.util
from typing import List, Mapping

# import name -> pip requirement
SEGMENT_REQUIREMENTS: Mapping[str, str] = {
    "monai": "monai>=1.4",
    "safetensors": "safetensors>=0.4",
    "yaml": "pyyaml>=6",
    "scipy": "scipy>=1.10",
    "tqdm": "tqdm>=4.66",
    "psutil": "psutil>=5.9",
}
PHANTOM_REQUIREMENTS: Mapping[str, str] = {
    "nilearn": "nilearn>=0.10",
    "scipy": "scipy>=1.10",
    "tqdm": "tqdm>=4.66",
}


def missing_requirements(requirements: Mapping[str, str]) -> List[str]:
    """The pip requirements whose module cannot be found in this Python."""
    return [spec for name, spec in requirements.items() if importlib.util.find_spec(name) is None]
