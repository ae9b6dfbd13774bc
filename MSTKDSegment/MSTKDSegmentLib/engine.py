"""Where the `mstkd` engine is, and how to start it in a child process (`segment` once, or `serve` warm)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

# The engine's source in a checkout: <root>/MSTKDSegment/MSTKDSegmentLib -> <root>/Training.
_CHECKOUT_ENGINE = Path(__file__).resolve().parents[2] / "Training"


def ensure_engine_importable() -> None:
    """Make `import mstkd` work: a no-op in the extension (mstkd ships beside this package) or
    where mstkd is installed; in a source checkout loaded into Slicer, add Training/ to sys.path."""
    if importlib.util.find_spec("mstkd") is not None:
        return
    if (_CHECKOUT_ENGINE / "mstkd" / "__init__.py").is_file():
        sys.path.insert(0, str(_CHECKOUT_ENGINE))


def engine_folder() -> Path:
    """The folder holding the `mstkd` package this process imports."""
    import mstkd

    return Path(mstkd.__file__).resolve().parents[1]


def segment_command(python: str) -> List[str]:
    """The command that runs `mstkd segment` with a given Python interpreter."""
    return [python, "-m", "mstkd", "segment"]


def serve_command(python: str) -> List[str]:
    """The command that starts the warm engine, `mstkd serve`, with a given Python interpreter."""
    return [python, "-m", "mstkd", "serve"]


def child_environment(base: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The environment of the child: `base` (in Slicer, the environment Slicer itself started with;
    default ours) with the engine's folder first on PYTHONPATH, unbuffered UTF-8 output so that
    progress lines arrive as they are written, and PyTorch's CPU stand-in for operations Apple's
    GPU lacks."""
    env = dict(os.environ if base is None else base)
    paths: Sequence[str] = [str(engine_folder())]
    if env.get("PYTHONPATH"):
        paths = [*paths, env["PYTHONPATH"]]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    env.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")
    return env
