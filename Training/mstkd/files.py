"""Writing files so that a crash never leaves a half-written file under its final name.

`atomic_write` writes beside the target and renames into place. A file too large or slow for that
is first written under a hidden partial name that carries the writer's process id, so that a later
run can tell a file half-written by a killed process from one still being written.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, List, Union

import psutil

PARTIAL_MARK = ".partial-"


def atomic_write(path: Union[str, Path], write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it into place.

    A crash or kill midway leaves the previous file (or none), never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb") as stream:
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def partial_path(path: Path, extension: str) -> Path:
    """The hidden name, beside `path`, under which this process writes it; it keeps `extension`.

    Keeping the extension matters to writers that pick the format from it (SimpleITK).
    """
    stem = path.name[: len(path.name) - len(extension)]
    return path.with_name(f".{stem}{PARTIAL_MARK}{os.getpid()}{extension}")


def remove_stale_partials(folder: Union[str, Path]) -> List[Path]:
    """Delete the files in `folder` half-written by processes that no longer run; returns them."""
    removed = []
    for path in sorted(Path(folder).glob(f".*{PARTIAL_MARK}*")):
        writer = path.name.split(PARTIAL_MARK, 1)[1].split(".", 1)[0]
        if writer.isdigit() and not psutil.pid_exists(int(writer)):
            path.unlink()
            removed.append(path)
    return removed
