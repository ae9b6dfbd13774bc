"""Model files: safetensors weights plus JSON metadata, identified by sha256, written atomically.

The format training writes and inference reads: the weights, their digest, and the metadata
(`model_metadata`) from which `experiment_of` rebuilds what the weights belong to.

Nothing here unpickles: a checkpoint is tensors and text, so a user's file can never run code.
A file records a digest over its weights and its metadata together (format 2), so that a model
given by path cannot be used with edited metadata (spacing, labels, sequence order). Files of
format 1 recorded a digest of the weights alone: they are fully verified when the registry
vouches for the whole file's sha256, and otherwise load with `metadata_verified` False.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from mstkd.conventions import MODEL_CHANNELS, SEQUENCES, label_convention
from mstkd.errors import MSTKDError
from mstkd.experiment import ExperimentConfig, experiment_from_mapping
from mstkd.files import write_bytes
from mstkd.preprocess.grid import check_spacing
from mstkd.typed_config import to_mapping

METADATA_KEY = "mstkd"
WEIGHTS_DIGEST_KEY = "weights_sha256"
# sha256 over the weights' digest and every other metadata field (format 2 on).
CONTENT_DIGEST_KEY = "content_sha256"
FORMAT_VERSION = 2
# What a model file must record for inference (model_metadata writes it).
MODEL_METADATA = ("experiment", "sequences", "channels", "labels", "spacing")


@dataclass(frozen=True)
class Checkpoint:
    """Weights and metadata read from one file, with the file's identity."""

    path: Path
    state_dict: Dict[str, torch.Tensor]
    metadata: Dict[str, Any]
    sha256: str
    metadata_verified: bool = True


def save_checkpoint(
    path: Union[str, Path], state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, Any]
) -> str:
    """Write weights and JSON-serialisable metadata atomically; returns the file's sha256."""
    payload = checkpoint_bytes(state_dict, metadata)
    write_bytes(path, payload)
    return hashlib.sha256(payload).hexdigest()


def checkpoint_bytes(state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, Any]) -> bytes:
    """The bytes of a checkpoint file: the tensors, and the metadata with both digests recorded."""
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in state_dict.items()}
    recorded = {**metadata, "format_version": FORMAT_VERSION, WEIGHTS_DIGEST_KEY: weights_digest(tensors)}
    recorded[CONTENT_DIGEST_KEY] = content_digest(recorded)
    return save(tensors, metadata={METADATA_KEY: json.dumps(recorded, sort_keys=True)})


def load_checkpoint(path: Union[str, Path], expected_sha256: Optional[str] = None) -> Checkpoint:
    """Read a checkpoint, refusing a missing, truncated, foreign or tampered file.

    `expected_sha256` is the whole file's digest when a registry records it.
    """
    path = Path(path)
    if path.is_dir():
        raise MSTKDError(f"{path} is a folder; give the model file itself (a .safetensors file).")
    if not path.is_file():
        raise MSTKDError(
            f"Model file not found: {path}. Check the path or use a registry name such as 'demo'."
        )
    try:
        payload = path.read_bytes()
    except OSError as error:
        raise MSTKDError(f"Cannot read the model file {path} ({error.strerror}).") from None
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
    metadata = _parse_metadata(path, header[METADATA_KEY])
    if metadata.get(WEIGHTS_DIGEST_KEY) != weights_digest(state_dict):
        raise MSTKDError(
            f"The weights in {path} do not match the digest recorded when it was written: the file was "
            "damaged or altered. Delete it and get it again."
        )
    if CONTENT_DIGEST_KEY in metadata or metadata.get("format_version") != 1:
        if metadata.get(CONTENT_DIGEST_KEY) != content_digest(metadata):
            raise MSTKDError(
                f"The metadata of the model file {path} (spacing, labels, sequences, configuration) do "
                "not match the digest recorded when it was written: the file was edited or damaged. "
                "Delete it and get it again."
            )
        return Checkpoint(path, state_dict, metadata, digest)
    vouched = expected_sha256 is not None  # the registry's digest of the whole file was checked
    return Checkpoint(path, state_dict, metadata, digest, metadata_verified=vouched)


def is_model_file(path: Union[str, Path]) -> bool:
    """True for a safetensors file whose header carries mstkd's metadata (a model file mstkd wrote)."""
    try:
        with open(path, "rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            if size > os.fstat(handle.fileno()).st_size - 8:  # any file's first 8 bytes: not a header
                return False
            header = json.loads(handle.read(size).decode("utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(header, dict) and METADATA_KEY in header.get("__metadata__", {})


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
    """The experiment a model file records, after checking every metadata field inference uses."""
    metadata, path = checkpoint.metadata, checkpoint.path
    missing = [key for key in MODEL_METADATA if key not in metadata]
    if missing:
        raise MSTKDError(
            f"The model file {path} lacks the metadata {', '.join(missing)}; it was not exported by mstkd."
        )
    if metadata["sequences"] != list(SEQUENCES) or metadata["channels"] != list(MODEL_CHANNELS):
        raise MSTKDError(
            f"The model file {path} was trained with sequences {metadata['sequences']} and channels "
            f"{metadata['channels']}; this version expects {list(SEQUENCES)} and {list(MODEL_CHANNELS)}."
        )
    try:
        if not isinstance(metadata["labels"], str):
            raise MSTKDError(f"its label convention is {metadata['labels']!r}, not a name")
        label_convention(metadata["labels"])
        check_spacing(_numbers(metadata["spacing"]))
        if not isinstance(metadata["experiment"], dict):
            raise MSTKDError(f"its configuration is {type(metadata['experiment']).__name__}, not a mapping")
        return experiment_from_mapping(metadata["experiment"])
    except MSTKDError as error:
        raise MSTKDError(f"The model file {path} has invalid metadata: {error}") from None


def unverified_metadata(checkpoint: Checkpoint) -> List[str]:
    """A warning when a file's digest does not cover its metadata (format 1, no registry to vouch)."""
    if checkpoint.metadata_verified:
        return []
    spacing = "x".join(f"{float(s):g}" for s in checkpoint.metadata["spacing"])
    return [
        f"the model file {checkpoint.path} was written by an older mstkd whose digest covers its weights but "
        f"not its metadata; they are used as the file says (spacing {spacing} mm, labels "
        f"{checkpoint.metadata['labels']}): make sure the file was not edited."
    ]


def _numbers(values: Any) -> List[float]:
    if not isinstance(values, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    ):
        raise MSTKDError(f"its spacing is {values!r}, not a list of three numbers (mm)")
    return [float(v) for v in values]


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


def content_digest(metadata: Mapping[str, Any]) -> str:
    """sha256 over every metadata field but this digest itself (the weights' digest among them)."""
    covered = {key: value for key, value in metadata.items() if key != CONTENT_DIGEST_KEY}
    return hashlib.sha256(json.dumps(covered, sort_keys=True).encode("utf-8")).hexdigest()


def _parse_metadata(path: Path, text: str) -> Dict[str, Any]:
    try:
        metadata = json.loads(text)
    except ValueError:
        metadata = None
    if not isinstance(metadata, dict):
        raise MSTKDError(
            f"The metadata of the model file {path} are not a JSON object; the file was damaged or altered. "
            "Delete it and get it again."
        )
    return metadata


def _read_header(payload: bytes) -> Dict[str, str]:
    """The `__metadata__` block of a safetensors payload (8-byte length, then JSON)."""
    size = int.from_bytes(payload[:8], "little")
    return json.loads(payload[8 : 8 + size].decode("utf-8")).get("__metadata__", {})
