"""The resumable part of a run beside its weights: optimisers, scheduler, step, RNG, best score."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Union

import torch

from mstkd.errors import MSTKDError
from mstkd.files import atomic_write


def rng_state() -> Dict[str, Any]:
    """The global torch RNG states (dropout draws from them)."""
    state: Dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Dict[str, Any]) -> None:
    """Put back the RNG states saved by `rng_state`."""
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training_state(path: Union[str, Path], state: Dict[str, Any]) -> None:
    """Write the state atomically (tensors and plain Python values only)."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_training_state(path: Union[str, Path]) -> Dict[str, Any]:
    """Read a state written by `save_training_state`; nothing but tensors and plain values is loaded."""
    path = Path(path)
    if not path.is_file():
        raise MSTKDError(f"No training state at {path}: nothing to resume. Start without --resume.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a damaged file
        raise MSTKDError(
            f"The training state {path} cannot be read ({error}); start the run again."
        ) from None
