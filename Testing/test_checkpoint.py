"""Checkpoint files: round trip, identity, and refusal of damaged or foreign files."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from mstkd.checkpoint import load_checkpoint, save_checkpoint, sha256_of
from mstkd.errors import MSTKDError


@pytest.fixture
def checkpoint_file(tmp_path):
    path = tmp_path / "model.safetensors"
    weights = {"conv.weight": torch.randn(4, 2, 3), "conv.bias": torch.zeros(4)}
    digest = save_checkpoint(path, weights, {"config": {"width": 8}, "sequences": ["flair", "t2"]})
    return path, weights, digest


def test_round_trip_keeps_weights_metadata_and_identity(checkpoint_file):
    path, weights, digest = checkpoint_file
    checkpoint = load_checkpoint(path, expected_sha256=digest)
    assert checkpoint.sha256 == digest == sha256_of(path)
    assert checkpoint.metadata["config"] == {"width": 8}
    assert checkpoint.metadata["format_version"] == 1
    for name, tensor in weights.items():
        assert torch.equal(checkpoint.state_dict[name], tensor)
    assert not list(path.parent.glob(".*.tmp")), "the temporary file must be gone"


def test_tampered_file_is_refused(checkpoint_file):
    path, _, digest = checkpoint_file
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(MSTKDError, match="sha256"):
        load_checkpoint(path, expected_sha256=digest)


def test_altered_weights_are_refused_without_a_registry_checksum(checkpoint_file):
    path, _, _ = checkpoint_file
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # the last byte belongs to the last tensor's data
    path.write_bytes(bytes(data))
    with pytest.raises(MSTKDError, match="do not match the digest"):
        load_checkpoint(path)


def test_truncated_missing_and_foreign_files_are_refused(checkpoint_file, tmp_path):
    path, _, _ = checkpoint_file
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(MSTKDError, match="truncated"):
        load_checkpoint(path)
    with pytest.raises(MSTKDError, match="not found"):
        load_checkpoint(tmp_path / "absent.safetensors")
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(1)}, foreign)
    with pytest.raises(MSTKDError, match="not written by mstkd"):
        load_checkpoint(foreign)
