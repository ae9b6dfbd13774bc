"""The model registry: bundled files and file:// downloads, each verified by sha256; helpful refusals."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from mstkd.errors import MSTKDError
from mstkd.inference.registry import cache_dir, read_registry, resolve_model
from mstkd.resources import resources_dir

CARD = {
    "spacing": [2.0, 2.0, 2.0],
    "training_data": "synthetic phantoms",
    "intended_use": "tests only",
    "description": "a few bytes",
}


def write_registry(resources: Path, *entries: dict) -> Path:
    path = resources / "models" / "registry.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format_version": 1, "models": list(entries)}))
    return path


def entry(name: str, payload: bytes, **where: str) -> dict:
    return {
        "name": name,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "size": len(payload),
        **CARD,
        **where,
    }


@pytest.fixture
def resources(tmp_path, monkeypatch):
    """An empty Resources folder and model cache, found through the environment variables."""
    folder = tmp_path / "Resources"
    monkeypatch.setenv("MSTKD_RESOURCES", str(folder))
    monkeypatch.setenv("MSTKD_CACHE", str(tmp_path / "cache"))
    write_registry(folder)
    return folder


def test_the_shipped_registry_is_valid_and_found_beside_the_package(monkeypatch):
    monkeypatch.delenv("MSTKD_RESOURCES", raising=False)
    assert (resources_dir() / "models" / "registry.json").is_file()
    for model in read_registry():
        assert model.file or model.url


def test_a_bundled_file_entry_resolves_to_its_verified_file(resources):
    payload = b"weights" * 100
    (resources / "models" / "demo.safetensors").write_bytes(payload)
    write_registry(resources, entry("demo", payload, file="demo.safetensors"))
    resolved = resolve_model("DEMO")  # names are case-insensitive
    assert resolved.path == resources / "models" / "demo.safetensors"
    assert resolved.name == "demo" and resolved.sha256 == hashlib.sha256(payload).hexdigest()
    assert resolved.entry is not None and resolved.entry.intended_use == "tests only"


def test_a_bare_name_means_the_registry_model_even_beside_a_folder_of_that_name(
    resources, tmp_path, monkeypatch
):
    payload = b"weights" * 100
    (resources / "models" / "demo.safetensors").write_bytes(payload)
    write_registry(resources, entry("demo", payload, file="demo.safetensors"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()  # e.g. the output folder of an earlier `mstkd demo --out demo`
    (tmp_path / "other").mkdir()
    assert resolve_model("demo").path == resources / "models" / "demo.safetensors"
    with pytest.raises(MSTKDError, match="--model other is a folder; give the model file itself"):
        resolve_model("other")


def test_a_tampered_bundled_file_is_refused(resources):
    payload = bytearray(b"weights" * 100)
    write_registry(resources, entry("demo", bytes(payload), file="demo.safetensors"))
    payload[10] ^= 0xFF
    (resources / "models" / "demo.safetensors").write_bytes(bytes(payload))
    with pytest.raises(MSTKDError, match="damaged or was altered. Reinstall"):
        resolve_model("demo")


def test_a_url_entry_is_downloaded_once_into_the_cache_and_verified(resources, tmp_path):
    payload = b"remote weights" * 1000
    served = tmp_path / "server" / "big.safetensors"
    served.parent.mkdir()
    served.write_bytes(payload)
    write_registry(resources, entry("big", payload, url=served.as_uri()))
    seen = []
    resolved = resolve_model("big", report=lambda done, total: seen.append((done, total)))
    assert resolved.path.parent == cache_dir() == tmp_path / "cache" / "models"
    assert resolved.path.read_bytes() == payload
    assert seen[-1] == (len(payload), len(payload))
    served.unlink()  # a second use reads the cache, not the network
    assert resolve_model("big").path == resolved.path


def test_a_tampered_download_is_refused_and_nothing_is_left_in_the_cache(resources, tmp_path):
    payload = b"remote weights" * 1000
    served = tmp_path / "server.safetensors"
    served.write_bytes(payload[:-1] + b"!")
    write_registry(resources, entry("big", payload, url=served.as_uri()))
    with pytest.raises(MSTKDError, match="does not match the registry's sha256.*deleted"):
        resolve_model("big")
    assert not cache_dir().exists()  # not even the folder made for it


def test_an_unreachable_url_says_what_to_do(resources, tmp_path):
    missing = (tmp_path / "nowhere.safetensors").as_uri()
    write_registry(resources, entry("gone", b"x", url=missing))
    with pytest.raises(MSTKDError, match="Could not download model 'gone'.*--model"):
        resolve_model("gone")
    assert not cache_dir().exists()


def test_an_unknown_name_lists_the_registry_and_a_missing_path_says_so(resources):
    payload = b"w"
    write_registry(
        resources, entry("demo", payload, file="demo.safetensors"), entry("paper", payload, url="file:///x")
    )
    with pytest.raises(MSTKDError, match="'nonsense' is neither a model file nor.*demo, paper"):
        resolve_model("nonsense")
    with pytest.raises(MSTKDError, match="Model file not found: .*missing.safetensors"):
        resolve_model("missing.safetensors")


def test_an_existing_path_needs_no_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("MSTKD_RESOURCES", str(tmp_path / "nowhere"))
    model = tmp_path / "mine.safetensors"
    model.write_bytes(b"w")
    resolved = resolve_model(str(model))
    assert resolved.path == model and resolved.name == "mine" and resolved.sha256 is None


@pytest.mark.parametrize(
    ("models", "message"),
    [
        ([{"name": "a", "file": "a.safetensors"}], "lacks sha256, size"),
        ([{**entry("a", b"w"), "sha256": "abc", "file": "a"}], "malformed sha256"),
        ([entry("a", b"w")], "lacks file or url"),
        ([entry("a", b"w", file="a"), entry("A", b"w", file="b")], "more than once"),
    ],
)
def test_a_malformed_registry_is_reported(tmp_path, models, message):
    path = tmp_path / "registry.json"
    path.write_text(json.dumps({"models": models}))
    with pytest.raises(MSTKDError, match=message):
        read_registry(path)


def test_the_predictor_loads_a_registry_model_by_name(resources, tiny_model_file):
    from mstkd.inference.predictor import Predictor

    shutil.copy(tiny_model_file, resources / "models" / "tiny.safetensors")
    write_registry(resources, entry("tiny", Path(tiny_model_file).read_bytes(), file="tiny.safetensors"))
    predictor = Predictor("tiny", device="cpu")
    assert predictor.name == "tiny" and predictor.entry is not None
    assert predictor.sha256 == hashlib.sha256(Path(tiny_model_file).read_bytes()).hexdigest()
