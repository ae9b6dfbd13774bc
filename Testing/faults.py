"""What the reliability tables share: a row of the table, running a command, snapshots, and faults.

A row runs one command line against a fresh folder and asserts the exit status, the first line
of the message, and that the folder is exactly as before (no output, no partial file, every
input byte for byte the same). Faults: a full disk (a tiny tmpfs where this machine can mount
one, and everywhere an ENOSPC injected when a written file is flushed), a read-only folder (a
read-only bind mount as root, chmod otherwise: root writes through chmod) and an injected error
at the write.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import pytest

from mstkd.cli.main import main


@dataclass(frozen=True)
class Row:
    """One bad input or fault: how to build the command line in a folder, and what must come out.

    `arguments(setting)` prepares the setting's folder (it may write inputs there) and returns the
    arguments after the subcommand; `message` must match the start of the first error line after
    `mstkd COMMAND: error: `; `fault(monkeypatch, folder)` injects a failure before the run.
    """

    name: str
    arguments: Callable[[Any], List[str]]
    message: str
    status: int = 2
    fault: Optional[Callable[[pytest.MonkeyPatch, Path], None]] = None
    before_model: bool = True
    marks: Sequence = field(default_factory=tuple)

    def param(self):
        """The row as a pytest parameter named after it."""
        return pytest.param(self, id=self.name, marks=self.marks)


def snapshot(folder: Path) -> Dict[str, str]:
    """Every file and folder under `folder` (hidden ones too) with the sha256 of each file's bytes."""
    state = {}
    for path in sorted(Path(folder).rglob("*")):
        relative = str(path.relative_to(folder))
        if path.is_dir() and not path.is_symlink():
            state[relative + "/"] = ""
        elif path.is_file():
            state[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            state[relative] = "link"
    return state


def run_command(capsys, command: str, arguments: Sequence[str]) -> tuple:
    """Run `mstkd COMMAND ARGUMENTS` in this process: (status, first error line, stdout, stderr)."""
    try:
        status = main([command, *map(str, arguments)])
    except SystemExit as stop:  # argparse's usage errors
        status = stop.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return status, error_line(command, err), out, err


def error_line(command: str, err: str) -> str:
    """The first line of stderr that is not a progress bar or a progress line, stripped."""
    for line in re.split(r"[\r\n]+", err):
        text = line.strip()
        if text and not re.match(r"^(\w[\w ]*: +)?\d+%\|", text) and not text.startswith("["):
            return text
    return ""


def check_row(row: Row, command: str, setting: Any, folder: Path, capsys, monkeypatch) -> tuple:
    """Run one row in `folder` (its `setting` builds the arguments) and make every row's checks;
    returns the stdout and stderr for checks of the command's own."""
    arguments = row.arguments(setting)
    if row.fault is not None:
        row.fault(monkeypatch, folder)
    before = snapshot(folder)
    status, first, out, err = run_command(capsys, command, arguments)
    assert_row(row, command, status, first, before, snapshot(folder))
    return out, err


def check_table(rows: Sequence[Row], at_least: int) -> None:
    """A table's rows have distinct names, and there are as many as it promises."""
    assert len({row.name for row in rows}) == len(rows) >= at_least


def assert_row(
    row: Row, command: str, status: int, first: str, before: Dict[str, str], after: Dict[str, str]
):
    """The checks every row makes."""
    assert status == row.status, first
    assert re.match(rf"mstkd {command}: error: {row.message}", first), first
    assert after == before, _difference(before, after)


def _difference(before: Dict[str, str], after: Dict[str, str]) -> str:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    return f"added {added}, removed {removed}, changed {changed}"


# Faults --------------------------------------------------------------------------------------


def fail_when_flushed(error: int, suffix: str = "") -> Callable[[pytest.MonkeyPatch, Path], None]:
    """A fault: flushing a written file (whose name ends with `suffix`) to disk fails with `error`,
    as a full disk or a read-only remount shows up on file systems that allocate late and over NFS."""

    def inject(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
        import mstkd.files

        flush = mstkd.files._flush_to_disk

        def failing(path: Path) -> None:
            if path.name.endswith(suffix):
                raise OSError(error, os.strerror(error), str(path))
            flush(path)

        monkeypatch.setattr(mstkd.files, "_flush_to_disk", failing)

    return inject


ENOSPC_WHEN_FLUSHED = fail_when_flushed(errno.ENOSPC)
EROFS_WHEN_FLUSHED = fail_when_flushed(errno.EROFS)


def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make loading a model fail loudly: a row refused before the model must never get there."""
    import mstkd.inference.predictor

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the inputs and outputs were checked")

    monkeypatch.setattr(mstkd.inference.predictor, "load_trained_model", refuse)


def is_root() -> bool:
    """True when this process runs as root (chmod does not stop root from writing)."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """`folder` made read-only: a read-only bind mount as root, chmod 555 otherwise; skip if neither works."""
    folder = Path(folder)
    if is_root():
        if not _mount(["--bind", str(folder), str(folder)]):
            pytest.skip("cannot bind-mount here (not allowed in this container)")
        try:
            if not _mount(["-o", "remount,bind,ro", str(folder)]):
                pytest.skip("cannot remount read-only here")
            yield folder
        finally:
            _umount(folder)
        return
    mode = folder.stat().st_mode
    folder.chmod(0o555)
    try:
        yield folder
    finally:
        folder.chmod(mode)


@contextlib.contextmanager
def small_disk(folder: Path, size: str = "96k") -> Iterator[Path]:
    """A tmpfs of `size` mounted on the empty `folder` (a disk that fills up); skipped where it cannot be."""
    if not is_root() or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    folder.mkdir(parents=True, exist_ok=True)
    if not _mount(["-t", "tmpfs", "-o", f"size={size}", f"mstkd-test-{uuid.uuid4().hex[:8]}", str(folder)]):
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield folder
    finally:
        _umount(folder)


def _mount(arguments: List[str]) -> bool:
    if shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", *arguments], capture_output=True).returncode == 0


def _umount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)
