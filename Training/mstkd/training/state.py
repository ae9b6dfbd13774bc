"""The resumable part of a run beside its weights: optimisers, scheduler, step, RNG, best score."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, Dict, Union

import torch

from mstkd.errors import MSTKDError, first_line


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


def training_state_bytes(state: Dict[str, Any]) -> bytes:
    """The bytes of a training state file (tensors and plain Python values only)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def load_training_state(path: Union[str, Path]) -> Dict[str, Any]:
    """Read a state written from `training_state_bytes`; nothing but tensors and plain values is loaded."""
    path = Path(path)
    if not path.is_file():
        raise MSTKDError(f"No training state at {path}: nothing to resume. Start without --resume.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # weights_only refused to build an object: the file was not written by mstkd (or was altered).
        refused = next((line.strip() for line in str(error).splitlines() if "GLOBAL" in line.upper()), "")
        raise MSTKDError(
            f"The training state {path} holds objects other than tensors and plain values, which are never "
            f"loaded ({refused or 'refused by torch.load(weights_only=True)'}); it was not written by mstkd "
            "or was altered. Restore the run folder from a backup, or start the run again."
        ) from None
    except Exception as error:  # torch raises several types for a damaged file
        raise MSTKDError(
            f"The training state {path} cannot be read ({first_line(error).split('. ')[0]}): it is damaged "
            "or truncated. "
            "Restore the run folder from a backup, or start the run again."
        ) from None
