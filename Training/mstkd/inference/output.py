"""Writing a segmentation: the label map and its JSON summary, each atomically.

The label map is renamed into place last, so a file under its final name is always complete and
its summary beside it: a batch run that was interrupted can skip exactly the finished cases.
The label map is first written under a hidden name that carries the writer's process id, so a
later run can tell a file half-written by a killed process from one still being written.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import psutil

from mstkd.checkpoint import atomic_write
from mstkd.errors import MSTKDError
from mstkd.imageio import IMAGE_EXTENSIONS, image_extension, strip_image_extension, write_image
from mstkd.inference.predictor import SegmentationResult

PARTIAL_MARK = ".partial-"


def check_output_path(path: Union[str, Path]) -> Path:
    """The output path, if its name ends with an image extension; else MSTKDError before any work."""
    path = Path(path)
    if image_extension(path) is None:
        raise MSTKDError(
            f"Cannot write the label map to {path}: name it with one of {', '.join(IMAGE_EXTENSIONS)} "
            "(e.g. labels.nii.gz)."
        )
    if path.is_dir():
        raise MSTKDError(
            f"{path} is a folder; give the label map's file name, e.g. {path / 'labels.nii.gz'}."
        )
    return path


def write_result(
    result: SegmentationResult, output: Union[str, Path], summary: Optional[Union[str, Path]] = None
) -> Dict[str, Any]:
    """Write the label map (and the summary JSON, when a path is given); returns the summary.

    The summary's timings gain `write` and `total` (the sum of the stages).
    """
    output = check_output_path(output)
    started = time.perf_counter()
    # Hidden, per process, and with the right extension (SimpleITK picks the format from it).
    partial = output.with_name(
        f".{strip_image_extension(output)}{PARTIAL_MARK}{os.getpid()}{image_extension(output)}"
    )
    try:
        write_image(result.labels, partial)
        data = result.summary(output)
        data["timings_s"]["write"] = round(time.perf_counter() - started, 3)
        data["timings_s"]["total"] = round(sum(data["timings_s"].values()), 3)
        if summary is not None:
            text = json.dumps(data, indent=2) + "\n"
            atomic_write(summary, lambda tmp: _write_readable(tmp, text))
        os.replace(partial, output)
    finally:
        if partial.exists():
            partial.unlink()
    return data


def remove_stale_partials(folder: Union[str, Path]) -> List[Path]:
    """Delete the label maps in `folder` half-written by processes that no longer run; returns them."""
    removed = []
    for path in sorted(Path(folder).glob(f".*{PARTIAL_MARK}*")):
        writer = path.name.split(PARTIAL_MARK, 1)[1].split(".", 1)[0]
        if writer.isdigit() and not psutil.pid_exists(int(writer)):
            path.unlink()
            removed.append(path)
    return removed


def _write_readable(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o644)  # the temporary file was private; the summary is an ordinary output
