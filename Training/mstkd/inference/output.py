"""Writing a segmentation: the label map and its JSON summary, each atomically.

The label map is written under a partial name (mstkd.files) and renamed into place last, so a
file under its final name is always complete and its summary beside it: a batch run that was
interrupted can skip exactly the finished cases.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Dict, Optional, Union

from mstkd.errors import MSTKDError
from mstkd.files import atomic_write, partial_path
from mstkd.imageio import IMAGE_EXTENSIONS, image_extension, write_image
from mstkd.inference.result import SegmentationResult


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
    result: SegmentationResult,
    output: Union[str, Path],
    summary: Optional[Union[str, Path]] = None,
    brain_mask: Optional[Union[str, Path]] = None,
) -> Dict[str, Any]:
    """Write the label map (and the summary JSON and brain mask, when paths are given); returns the summary.

    The summary's timings gain `write` and `total` (the sum of the stages); the brain mask needs a
    result that holds one (Predictor.segment(..., brain_mask=True)).
    """
    output = check_output_path(output)
    started = time.perf_counter()
    partial = partial_path(output, image_extension(output))
    try:
        if brain_mask is not None:
            _write_brain_mask(result, check_output_path(brain_mask))
        write_image(result.labels, partial)
        data = result.summary(output)
        if brain_mask is not None:
            data["brain_mask"] = os.path.abspath(brain_mask)
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


def _write_brain_mask(result: SegmentationResult, path: Path) -> None:
    if result.brain_mask is None:
        raise ValueError("this result holds no brain mask; segment with brain_mask=True")
    partial = partial_path(path, image_extension(path))
    try:
        write_image(result.brain_mask, partial)
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()


def _write_readable(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o644)  # the temporary file was private; the summary is an ordinary output
