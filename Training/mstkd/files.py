"""Writing files so that nothing the user had is lost and nothing half-written survives.

Every file mstkd writes goes through `stage` (`write_verified`, `write_bytes`, `write_text` and
`write_together` are built on it): the writer fills a hidden staging folder
beside the target, named `.NAME.partial-PID.*` after the writing process; each file it produced
is flushed to disk (fsync) and checked (not empty, plus the caller's read-back), and only then
renamed into place, the named file last, so that a name always holds a complete file. A file
format that keeps its voxels in a second file (NRRD's detached header) is written and moved
whole. A staging folder whose process no longer runs was left by a kill or a power cut: the
next write into that folder deletes it (`remove_stale_partials`). Failures of the file system
become MSTKDError with a message that says what to do (free space, a writable folder).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from mstkd.errors import MSTKDError

PathLike = Union[str, "os.PathLike[str]"]

PARTIAL_MARK = ".partial-"
# Files a format writes beside the named one, by the named file's extension: a detached NRRD
# header keeps its voxels in NAME.raw.gz (compressed) or NAME.raw.
COMPANIONS: Dict[str, Tuple[str, ...]] = {".nhdr": (".raw.gz", ".raw")}
_HASH_CHUNK = 1 << 20


def format_files(path: PathLike) -> Tuple[Path, ...]:
    """The named file and every file its format may write beside it (.nhdr -> .raw.gz, .raw)."""
    path = Path(path)
    for extension, companions in COMPANIONS.items():
        if path.name.lower().endswith(extension):
            stem = path.name[: -len(extension)]
            return (path, *(path.with_name(stem + companion) for companion in companions))
    return (path,)


def sha256_of(path: PathLike) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def same_path(a: PathLike, b: PathLike) -> bool:
    """True when two paths name the same file (links and relative paths resolved)."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def check_distinct(outputs: Mapping[str, Optional[PathLike]], inputs: Mapping[str, PathLike]) -> None:
    """Refuse an output (or a file its format writes) that is an input or another output.

    Both mappings name the files by their option, e.g. {"-o": ..., "--summary": ...} and
    {"--flair": ...}, so that the message points at the options to change.
    """
    given = [(option, Path(path)) for option, path in outputs.items() if path is not None]
    for index, (option, path) in enumerate(given):
        for written in format_files(path):
            for source, source_path in inputs.items():
                if same_path(written, source_path):
                    raise MSTKDError(
                        f"{option} {path} would overwrite the input {source} {source_path}; choose "
                        "another output name (your input must stay as it is)."
                    )
            for other, other_path in given[index + 1 :]:
                if any(same_path(written, p) for p in format_files(other_path)):
                    raise MSTKDError(f"{option} and {other} both name {path}; give each output its own file.")


def check_replaceable(
    path: PathLike, ours: Callable[[Path], bool], overwrite: bool, what: str, option: str = "--overwrite"
) -> None:
    """Refuse to replace an existing file that mstkd did not write (by `ours`) unless `overwrite`.

    An empty file holds nothing to lose and may be replaced; a folder never is.
    """
    path = Path(path)
    if path.is_dir():
        raise MSTKDError(f"{path} is a folder; give the file name of the {what}, e.g. {path / 'name'}.")
    if overwrite or not path.exists() or path.stat().st_size == 0 or ours(path):
        return
    raise MSTKDError(
        f"{path} exists and is not a {what} written by mstkd; choose another name, or add {option} "
        "to replace it."
    )


def check_writable(folder: PathLike, needed_bytes: int = 0) -> None:
    """Refuse early a folder that cannot take the outputs: not creatable, read-only, or too full.

    The nearest existing folder is tested by creating (and deleting) a file in it, which works
    for every reason a write can fail (permissions, read-only mounts, root on a read-only disk).
    """
    folder = Path(os.path.abspath(folder))
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise MSTKDError(f"{existing} is a file, so the folder {folder} cannot be created; choose another.")
    try:
        handle, probe = tempfile.mkstemp(prefix=f".mstkd-probe{PARTIAL_MARK}{os.getpid()}.", dir=existing)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise MSTKDError(describe_write_error(folder, error)) from None
    free = shutil.disk_usage(existing).free
    if needed_bytes and free < needed_bytes:
        raise MSTKDError(
            f"The disk of {folder} has {_megabytes(free)} free, less than the {_megabytes(needed_bytes)} "
            "the outputs need; free some space or choose another output folder."
        )


class StagedFile:
    """A file written and checked in its staging folder, waiting for `commit()` to take its name."""

    def __init__(self, path: Path, staging: Path, created: List[Path]) -> None:
        self.path = path
        self.staging = staging
        self.created = created  # folders made for the file: removed again if it is discarded

    def commit(self) -> Path:
        """Rename the staged file (its companions first) into place; returns the final path."""
        try:
            produced = sorted(self.staging.iterdir(), key=lambda p: p.name == self.path.name)
            for file in produced:
                os.replace(file, self.path.parent / file.name)
            for stale in format_files(self.path)[1:]:
                if stale.name not in {file.name for file in produced} and stale.exists():
                    stale.unlink()  # the voxels of the file just replaced
            _flush_folder(self.path.parent)
        except OSError as error:
            raise MSTKDError(describe_write_error(self.path, error)) from None
        finally:
            self.discard()
        return self.path

    def discard(self) -> None:
        """Delete the staging folder, what is left in it, and the folders made for a file never committed."""
        shutil.rmtree(self.staging, ignore_errors=True)
        if not self.path.exists():
            remove_empty(self.created)


def stage(
    path: PathLike,
    write: Callable[[Path], None],
    verify: Optional[Callable[[Path], None]] = None,
) -> StagedFile:
    """Call `write(staged)` in a staging folder beside `path`, flush what it wrote and check it.

    `verify(staged)` reads the file back and raises MSTKDError when it is not what was meant. A
    full disk, a read-only folder or a failed check raise MSTKDError and leave nothing behind.
    """
    path = Path(path)
    created = missing_folders([path])
    make_folder(path.parent)
    remove_stale_partials([path.parent])  # whatever run a dead process was, its leftovers go
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{path.name}{PARTIAL_MARK}{os.getpid()}.", dir=path.parent))
    except OSError as error:
        remove_empty(created)
        raise MSTKDError(describe_write_error(path, error)) from None
    staged = StagedFile(path, staging, created)
    try:
        target = staging / path.name
        write(target)
        if not target.is_file():
            raise MSTKDError(f"Writing {path} produced no file; this is a bug of mstkd, please report it.")
        for file in staging.iterdir():
            _flush_to_disk(file)
            if file.stat().st_size == 0:
                raise MSTKDError(_incomplete(path, "it came out empty"))
        if verify is not None:
            verify(target)
    except OSError as error:
        staged.discard()
        raise MSTKDError(describe_write_error(path, error)) from None
    except BaseException:
        staged.discard()
        raise
    return staged


def write_verified(
    path: PathLike,
    write: Callable[[Path], None],
    verify: Optional[Callable[[Path], None]] = None,
) -> Path:
    """`stage` a file and rename it into place at once: the previous file (if any) or the new one, whole."""
    return stage(path, write, verify).commit()


def write_bytes(path: PathLike, data: bytes) -> Path:
    """Write a file verified by reading it back."""
    return stage_bytes(path, data).commit()


def write_together(files: Mapping[Path, bytes]) -> List[Path]:
    """Write several files that belong together: each is written and checked before any takes its
    name, so that a failure (a full disk) leaves the previous set whole."""
    staged: List[StagedFile] = []
    try:
        for path, data in files.items():
            staged.append(stage_bytes(path, data))
        return [file.commit() for file in staged]
    finally:
        for file in staged:
            file.discard()


def write_text(path: PathLike, text: str) -> Path:
    """Write a text file (UTF-8) verified by reading it back."""
    return write_bytes(path, text.encode("utf-8"))


def stage_bytes(path: PathLike, data: bytes) -> StagedFile:
    """`write_bytes` up to the rename: the checked file waits for `commit()`."""

    def write(staged: Path) -> None:
        with open(staged, "wb") as stream:
            stream.write(data)

    def verify(staged: Path) -> None:
        if staged.read_bytes() != data:
            raise MSTKDError(_incomplete(Path(path), "it reads back differently from what was written"))

    return stage(path, write, verify)


def make_folder(folder: PathLike) -> Path:
    """Create a folder (and its parents) or raise MSTKDError saying why it cannot be."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise MSTKDError(f"{folder} is a file; give a folder there.") from None
    except OSError as error:
        raise MSTKDError(describe_write_error(folder, error)) from None
    return folder


def missing_folders(paths: Iterable[PathLike]) -> List[Path]:
    """The folders that writing `paths` would create, deepest first (to remove them after a failure)."""
    missing = set()
    for path in paths:
        folder = Path(path).parent
        while not folder.exists():
            missing.add(folder)
            folder = folder.parent
    return sorted(missing, key=lambda folder: len(folder.parts), reverse=True)


def remove_empty(folders: Iterable[Path]) -> None:
    """Remove these folders where they are empty (deepest first, as `missing_folders` lists them)."""
    for folder in folders:
        with contextlib.suppress(OSError):  # not empty (or gone): it keeps what is in it
            folder.rmdir()


def remove_stale_partials(folders: Iterable[PathLike]) -> List[Path]:
    """Delete what writers that no longer run left half-written in these folders; returns it."""
    import psutil  # here, not above: Slicer imports the readers and writers before psutil is installed

    removed = []
    for folder in dict.fromkeys(Path(f) for f in folders):
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob(f".*{PARTIAL_MARK}*")):
            writer = path.name.split(PARTIAL_MARK, 1)[1].split(".", 1)[0]
            if not writer.isdigit() or psutil.pid_exists(int(writer)):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink()
            removed.append(path)
    return removed


def describe_write_error(path: PathLike, error: OSError) -> str:
    """A one-line account of why writing `path` failed, and what to do."""
    where = Path(path)
    if error.errno == errno.ENOSPC:
        return f"No space left on the disk of {where}; free some space or choose another output folder."
    if error.errno == errno.EDQUOT:
        return f"The disk quota of {where} is exhausted; free some space or choose another output folder."
    if error.errno == errno.EROFS:
        return f"{where} is on a read-only file system; choose an output folder you can write to."
    if error.errno in (errno.EACCES, errno.EPERM):
        return f"No permission to write {where}; choose an output folder you can write to."
    if error.errno == errno.ENAMETOOLONG:
        return f"The name {where} is too long for the file system; choose a shorter one."
    reason = error.strerror or type(error).__name__
    return f"Cannot write {where} ({reason}); choose another output path."


def _incomplete(path: Path, how: str) -> str:
    return f"Writing {path} failed: {how} (is the disk full?); nothing was written there."


def _flush_to_disk(path: Path) -> None:
    with open(path, "rb+") as stream:
        stream.flush()
        os.fsync(stream.fileno())


def _flush_folder(folder: Path) -> None:
    """Make the renames durable (POSIX; Windows has no folder handles to sync)."""
    if os.name != "posix":
        return
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB"
