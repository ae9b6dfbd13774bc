"""Model files: safetensors weights plus JSON metadata, identified by sha256, written atomically.

The format training writes and inference reads: the weights, their digest, and the metadata
(`model_metadata`) from which `experiment_of` rebuilds what the weights belong to.

Nothing here unpickles: a checkpoint is tensors and text, so a user's file can never run code.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from mstkd.conventions import MODEL_CHANNELS, SEQUENCES
from mstkd.errors import MSTKDError
from mstkd.experiment import ExperimentConfig, experiment_from_mapping
from mstkd.files import atomic_write
from mstkd.typed_config import to_mapping

METADATA_KEY = "mstkd"
WEIGHTS_DIGEST_KEY = "weights_sha256"
FORMAT_VERSION = 1
# What a model file must record for inference (model_metadata writes it).
MODEL_METADATA = ("experiment", "sequences", "channels", "labels", "spacing")
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class Checkpoint:
    """Weights and metadata read from one file, with the file's identity."""

    path: Path
    state_dict: Dict[str, torch.Tensor]
    metadata: Dict[str, Any]
    sha256: str


def sha256_of(path: Union[str, Path]) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_checkpoint(
    path: Union[str, Path], state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, Any]
) -> str:
    """Write weights and JSON-serialisable metadata atomically; returns the file's sha256."""
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in state_dict.items()}
    recorded = {"format_version": FORMAT_VERSION, **metadata, WEIGHTS_DIGEST_KEY: weights_digest(tensors)}
    header = {METADATA_KEY: json.dumps(recorded, sort_keys=True)}
    payload = save(tensors, metadata=header)
    atomic_write(path, lambda tmp: tmp.write_bytes(payload))
    return hashlib.sha256(payload).hexdigest()


def load_checkpoint(path: Union[str, Path], expected_sha256: Optional[str] = None) -> Checkpoint:
    """Read a checkpoint, refusing a missing, truncated, foreign or tampered file."""
    path = Path(path)
    if not path.is_file():
        raise MSTKDError(
            f"Model file not found: {path}. Check the path or use a registry name such as 'demo'."
        )
    payload = path.read_bytes()
    digest = hashlib.sha256(payload).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256.lower():
        raise MSTKDError(
            f"{path} does not match its recorded sha256 (expected {expected_sha256[:12]}..., "
            f"found {digest[:12]}...): the file is damaged or was altered. Delete it and get it again."
        )
    try:
        state_dict = load(payload)
        header = _read_header(payload)
    except (SafetensorError, ValueError, json.JSONDecodeError) as error:
        raise MSTKDError(
            f"{path} is not a readable mstkd checkpoint (truncated or not safetensors: {error})."
        ) from None
    if METADATA_KEY not in header:
        raise MSTKDError(f"{path} is a safetensors file without mstkd metadata; it was not written by mstkd.")
    metadata = json.loads(header[METADATA_KEY])
    if metadata.get(WEIGHTS_DIGEST_KEY) != weights_digest(state_dict):
        raise MSTKDError(
            f"The weights in {path} do not match the digest recorded when it was written: the file was "
            "damaged or altered. Delete it and get it again."
        )
    return Checkpoint(path, state_dict, metadata, digest)


def model_metadata(
    experiment: ExperimentConfig, labels: str, spacing: Tuple[float, ...], **extra: Any
) -> Dict[str, Any]:
    """What a model file records about itself: what `experiment_of` and inference need, plus `extra`."""
    return {
        "experiment": to_mapping(experiment),
        "method": experiment.method,
        "sequences": list(SEQUENCES),
        "channels": list(MODEL_CHANNELS),
        "labels": labels,
        "spacing": [float(s) for s in spacing],
        "patch": list(experiment.patch),
        **extra,
    }


def experiment_of(checkpoint: Checkpoint) -> ExperimentConfig:
    """The experiment a model file records, refusing a file that lacks what inference needs."""
    metadata = checkpoint.metadata
    missing = [key for key in MODEL_METADATA if key not in metadata]
    if missing:
        raise MSTKDError(
            f"{checkpoint.path} lacks the metadata {', '.join(missing)}; it was not exported by mstkd."
        )
    if list(metadata["sequences"]) != list(SEQUENCES) or list(metadata["channels"]) != list(MODEL_CHANNELS):
        raise MSTKDError(
            f"{checkpoint.path} was trained with sequences {metadata['sequences']} and channels "
            f"{metadata['channels']}; this version expects {list(SEQUENCES)} and {list(MODEL_CHANNELS)}."
        )
    return experiment_from_mapping(metadata["experiment"])


def weights_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in name order.

    Recorded inside the file, it lets a model given by path (no registry checksum) be checked too.
    """
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _read_header(payload: bytes) -> Dict[str, str]:
    """The `__metadata__` block of a safetensors payload (8-byte length, then JSON)."""
    size = int.from_bytes(payload[:8], "little")
    return json.loads(payload[8 : 8 + size].decode("utf-8")).get("__metadata__", {})
