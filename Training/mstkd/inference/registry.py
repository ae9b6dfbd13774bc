"""The model registry: named model files, bundled or downloaded once, always checked by sha256.

Resources/models/registry.json:

    {
      "format_version": 1,
      "models": [
        {
          "name": "demo",                      what --model takes (case-insensitive)
          "file": "demo.safetensors",          relative to Resources/models, and/or
          "url": "https://host/x.safetensors", downloaded once into the user cache
          "sha256": "<64 hex digits>",         of the file; checked before every use
          "size": 1234567,                     bytes
          "spacing": [2.0, 2.0, 2.0],          mm, the grid the model segments at
          "training_data": "...",              what it was trained on
          "intended_use": "...",               and what it is (not) for
          "description": "..."
        }
      ]
    }

An entry needs "file" or "url"; with both, the bundled file is used when present. Downloads go
to $MSTKD_CACHE/models (default ~/.cache/mstkd/models) and are refused and deleted when their
sha256 differs. Model files are safetensors: nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, List, Mapping, Optional, Tuple, Union

from tqdm.auto import tqdm

from mstkd.errors import MSTKDError
from mstkd.files import sha256_of, write_verified
from mstkd.resources import REGISTRY_FILE, models_dir

FORMAT_VERSION = 1
CACHE_VARIABLE = "MSTKD_CACHE"
MODEL_SUFFIX = ".safetensors"
REQUIRED_FIELDS = ("name", "sha256", "size", "spacing", "training_data", "intended_use", "description")
_CHUNK = 1 << 20
_DOWNLOAD_TIMEOUT_S = 60
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

# Called with (bytes done, bytes expected) while a model downloads.
DownloadReport = Callable[[int, int], None]


@dataclass(frozen=True)
class ModelEntry:
    """One registry entry: where the model file is, its identity and its model card."""

    name: str
    sha256: str
    size: int
    spacing: Tuple[float, float, float]
    training_data: str
    intended_use: str
    description: str
    file: Optional[str] = None
    url: Optional[str] = None


@dataclass(frozen=True)
class ResolvedModel:
    """A model file on disk, ready to load; `sha256` is the digest it must have, when one is recorded."""

    path: Path
    name: str
    sha256: Optional[str] = None
    entry: Optional[ModelEntry] = None


def registry_path() -> Path:
    """Resources/models/registry.json."""
    return models_dir() / REGISTRY_FILE


def cache_dir() -> Path:
    """Where downloaded models are kept: $MSTKD_CACHE/models, else ~/.cache/mstkd/models."""
    configured = os.environ.get(CACHE_VARIABLE, "").strip()
    if configured:
        return Path(configured).expanduser() / "models"
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base).expanduser() / "mstkd" / "models"


def read_registry(path: Optional[Path] = None) -> Tuple[ModelEntry, ...]:
    """The entries of a registry file (default: the bundled one); a malformed file raises."""
    path = registry_path() if path is None else Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MSTKDError(
            f"The model registry {path} is missing; reinstall mstkd or give a model file."
        ) from None
    except (OSError, ValueError) as error:
        raise MSTKDError(f"The model registry {path} is unreadable ({error}); reinstall mstkd.") from None
    models = data.get("models") if isinstance(data, dict) else data
    if not isinstance(models, list):
        raise MSTKDError(
            f"The model registry {path} holds no 'models' list; see mstkd/inference/registry.py."
        )
    entries = tuple(_entry(item, path) for item in models)
    names = [e.name.lower() for e in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise MSTKDError(f"The model registry {path} lists {', '.join(duplicates)} more than once.")
    return entries


def resolve_model(
    model: Union[str, Path],
    registry: Optional[Path] = None,
    report: Optional[DownloadReport] = None,
) -> ResolvedModel:
    """A model file path, or a registry name -> a verified file on disk (downloaded if needed).

    `registry` is the registry file to use (default: Resources/models/registry.json).
    """
    path = Path(model).expanduser()
    text = str(model).strip()
    # A folder is never a model: a bare name that is also a folder here still means the registry's model.
    if path.is_dir() and not (
        _looks_like_a_name(text) and _named((entry for entry, _ in _readable_entries(registry)), text)
    ):
        inside = sorted(p.name for p in path.glob(f"*{MODEL_SUFFIX}"))
        found = f" (it holds {', '.join(inside[:3])})" if inside else ""
        raise MSTKDError(
            f"--model {path} is a folder{found}; give the model file itself, e.g. student.safetensors."
        )
    if path.is_file():
        # A registry model given by its path (bundled or cached) is checked like one given by name.
        entries = _readable_entries(registry)
        for entry, folder in entries:
            if any(path.resolve() == known.resolve() for known in _entry_locations(entry, folder)):
                _verify(path, entry, "Reinstall the extension, or delete the file to download it again.")
                return ResolvedModel(path, entry.name, entry.sha256, entry)
        # A copy of a registry model is that model: the registry's sha256 vouches for all of it.
        digest = sha256_of(path) if entries else None
        for entry, _ in entries:
            if entry.sha256 == digest:
                return ResolvedModel(path, entry.name, entry.sha256, entry)
        return ResolvedModel(path, _model_name(path))
    if not _looks_like_a_name(text):
        names = _names(entry for entry, _ in _readable_entries(registry))
        raise MSTKDError(f"Model file not found: {path}. Check the path, or use a registry name ({names}).")
    registry = registry_path() if registry is None else Path(registry)
    entries = read_registry(registry)
    entry = _named(entries, text)
    if entry is not None:
        return ResolvedModel(_entry_file(entry, registry.parent, report), entry.name, entry.sha256, entry)
    raise MSTKDError(
        f"'{text}' is neither a model file nor a model in the registry; give the path of a {MODEL_SUFFIX} "
        f"model file or one of: {_names(entries)}."
    )


def _entry_file(entry: ModelEntry, folder: Path, report: Optional[DownloadReport]) -> Path:
    """The verified file of an entry: the bundled one, else the cached download (fetched if needed)."""
    if entry.file is not None:
        bundled = folder / entry.file
        if bundled.is_file():
            _verify(bundled, entry, "Reinstall the extension (or the mstkd package) to restore it.")
            return bundled
        if entry.url is None:
            raise MSTKDError(
                f"The model file of '{entry.name}' ({bundled}) is missing; reinstall the extension "
                f"(or the mstkd package), or give a model file path."
            )
    cached = _cached_file(entry)
    if cached.is_file():
        if sha256_of(cached) == entry.sha256:
            return cached
        cached.unlink()  # damaged since it was downloaded: fetch it again
    return download(entry, cached, report)


def download(entry: ModelEntry, target: Path, report: Optional[DownloadReport] = None) -> Path:
    """Download an entry's URL to `target` with a progress bar; a wrong sha256 leaves nothing behind."""

    def fetch(staged: Path) -> None:
        digest, done = hashlib.sha256(), 0
        try:
            response = urllib.request.urlopen(str(entry.url), timeout=_DOWNLOAD_TIMEOUT_S)
        except (OSError, ValueError) as error:
            raise _download_failed(entry, error) from None
        with response, open(staged, "wb") as stream:
            total = int(response.headers.get("Content-Length") or entry.size or 0)
            with _progress_bar(entry, total) as bar:
                while True:
                    try:
                        chunk = response.read(_CHUNK)
                    except OSError as error:
                        raise _download_failed(entry, error) from None
                    if not chunk:
                        break
                    stream.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    bar.update(len(chunk))
                    if report is not None:
                        report(done, total)
        if digest.hexdigest() != entry.sha256:
            raise MSTKDError(
                f"The download of model '{entry.name}' from {entry.url} does not match the registry's sha256 "
                f"(got {done} of {entry.size} bytes, sha256 {digest.hexdigest()[:12]}... instead of "
                f"{entry.sha256[:12]}...): it is damaged or was altered, and was deleted. Try again later; "
                f"if it persists, report it."
            )

    return write_verified(target, fetch)


def _download_failed(entry: ModelEntry, error: BaseException) -> MSTKDError:
    return MSTKDError(
        f"Could not download model '{entry.name}' from {entry.url} ({_reason(error)}). Check the "
        f"connection, or download the file yourself and pass its path with --model."
    )


def _progress_bar(entry: ModelEntry, total: int) -> tqdm:
    """A byte-counting bar on stderr (stdout may carry JSON progress lines)."""
    description = f"downloading model '{entry.name}'"
    return tqdm(
        total=total or None, unit="B", unit_scale=True, desc=description, file=sys.stderr, leave=False
    )


def _verify(path: Path, entry: ModelEntry, remedy: str) -> None:
    digest = sha256_of(path)
    if digest != entry.sha256:
        raise MSTKDError(
            f"The model file {path} does not match the sha256 recorded for '{entry.name}' in the registry "
            f"(expected {entry.sha256[:12]}..., found {digest[:12]}...): it is damaged or was altered. "
            f"{remedy}"
        )


def _entry(item: Any, path: Path) -> ModelEntry:
    if not isinstance(item, Mapping):
        raise MSTKDError(f"The model registry {path} holds an entry that is not an object: {item!r}.")
    label = item.get("name", "?")
    missing = [f for f in REQUIRED_FIELDS if f not in item]
    if missing or not (item.get("file") or item.get("url")):
        missing += [] if item.get("file") or item.get("url") else ["file or url"]
        raise MSTKDError(f"Model '{label}' in the registry {path} lacks {', '.join(missing)}.")
    sha256 = str(item["sha256"]).lower()
    if not _SHA256.match(sha256):
        raise MSTKDError(f"Model '{label}' in the registry {path} has a malformed sha256 '{item['sha256']}'.")
    spacing = tuple(float(s) for s in item["spacing"])
    if len(spacing) != 3:
        raise MSTKDError(f"Model '{label}' in the registry {path}: spacing needs three values (mm).")
    return ModelEntry(
        name=str(item["name"]),
        sha256=sha256,
        size=int(item["size"]),
        spacing=spacing,  # type: ignore[arg-type]
        training_data=str(item["training_data"]),
        intended_use=str(item["intended_use"]),
        description=str(item["description"]),
        file=item.get("file") or None,
        url=item.get("url") or None,
    )


def _looks_like_a_name(text: str) -> bool:
    """A registry name has no folder separator and no file extension."""
    return not any(sep in text for sep in ("/", "\\")) and not text.lower().endswith(MODEL_SUFFIX)


def _model_name(path: Path) -> str:
    name = path.name
    return name[: -len(MODEL_SUFFIX)] if name.lower().endswith(MODEL_SUFFIX) else path.stem


def _reason(error: BaseException) -> str:
    reason = getattr(error, "reason", None)
    return str(reason if reason is not None else error) or type(error).__name__


def _names(entries: Iterable[ModelEntry]) -> str:
    return ", ".join(e.name for e in entries) or "none (the registry lists no models yet)"


def _named(entries: Iterable[ModelEntry], name: str) -> Optional[ModelEntry]:
    """The entry of this name (names are case-insensitive), or None."""
    return next((entry for entry in entries if entry.name.lower() == name.lower()), None)


def _readable_entries(registry: Optional[Path]) -> List[Tuple[ModelEntry, Path]]:
    """The registry's entries with the folder of their files; none when it cannot be read."""
    try:
        path = registry_path() if registry is None else Path(registry)
        return [(entry, path.parent) for entry in read_registry(path)]
    except MSTKDError:
        return []


def _entry_locations(entry: ModelEntry, folder: Path) -> List[Path]:
    """Where an entry's file may be: bundled beside the registry, or in the download cache."""
    places = [folder / entry.file] if entry.file else []
    return places + [_cached_file(entry)]


def _cached_file(entry: ModelEntry) -> Path:
    return cache_dir() / f"{entry.name}-{entry.sha256[:12]}{MODEL_SUFFIX}"
