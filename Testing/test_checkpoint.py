"""Checkpoint files: round trip, identity, and refusal of damaged or foreign files."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from mstkd.checkpoint import load_checkpoint, save_checkpoint
from mstkd.errors import MSTKDError
from mstkd.files import sha256_of


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
    assert checkpoint.metadata["format_version"] == 2 and checkpoint.metadata_verified
    for name, tensor in weights.items():
        assert torch.equal(checkpoint.state_dict[name], tensor)
    assert not list(path.parent.glob(".*")), "the staging folder must be gone"


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


def rewrite_metadata(path, edit) -> None:
    """Change the metadata of a model file in place, keeping its weights and recorded digests."""
    import json

    from safetensors.torch import load, save

    payload = path.read_bytes()
    size = int.from_bytes(payload[:8], "little")
    header = json.loads(payload[8 : 8 + size])["__metadata__"]
    metadata = json.loads(header["mstkd"])
    edit(metadata)
    path.write_bytes(save(load(payload), metadata={"mstkd": json.dumps(metadata, sort_keys=True)}))


def test_edited_metadata_are_refused_by_the_digest_over_weights_and_metadata(checkpoint_file):
    path, _, _ = checkpoint_file
    rewrite_metadata(path, lambda m: m.update(sequences=["t2", "flair"]))
    with pytest.raises(MSTKDError, match="metadata of the model file .* do not match the digest"):
        load_checkpoint(path)


def test_a_format_1_file_loads_but_says_its_metadata_are_unverified_unless_vouched_for(checkpoint_file):
    path, _, _ = checkpoint_file
    rewrite_metadata(path, lambda m: (m.pop("content_sha256"), m.update(format_version=1)))
    assert not load_checkpoint(path).metadata_verified
    assert load_checkpoint(path, expected_sha256=sha256_of(path)).metadata_verified


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '"a string"'])
def test_metadata_that_are_not_a_json_object_are_a_clear_error(tmp_path, text):
    path = tmp_path / "odd.safetensors"
    save_file({"w": torch.zeros(1)}, path, metadata={"mstkd": text})
    with pytest.raises(MSTKDError, match="metadata of the model file .* are not a JSON object"):
        load_checkpoint(path)
