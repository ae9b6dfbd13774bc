"""Writing a segmentation: the label map and its JSON summary, verified, never over a file that is not ours.

Before any work, `check_outputs` refuses an output that is an input or names the other output,
one that would replace a file mstkd did not write (unless overwriting is asked for), and a folder
that cannot be written. `write_result` writes the summary first and the label map last, each
verified and renamed into place (mstkd.files), so that a label map under its final name always has
its summary beside it: an interrupted batch skips exactly the finished cases (`is_finished`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import SimpleITK as sitk

from mstkd.errors import MSTKDError
from mstkd.files import check_distinct, check_replaceable, check_writable, format_files, write_text
from mstkd.imageio import IMAGE_EXTENSIONS, image_bytes, image_extension, is_ours, read_image, stage_image
from mstkd.inference.result import SUMMARY_WRITER, SegmentationResult

# The marks of mstkd's label maps and brain masks (see mstkd.imageio.write_image).
LABEL_MAP = "label map"
BRAIN_MASK = "brain mask"
# How messages name the two files of a case where no option names them (a batch, the demo).
CASE_OUTPUTS = {"output": "the label map", "summary": "the summary"}
# Room for the summary and the label map's header, besides the voxels.
_SMALL_FILES_BYTES = 1 << 20


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


def check_outputs(
    output: Path,
    summary: Optional[Path],
    inputs: Mapping[str, Path],
    overwrite: bool,
    names: Mapping[str, str] = {"output": "-o", "summary": "--summary"},  # noqa: B006 (never mutated)
    brain_mask: Optional[Path] = None,
) -> None:
    """Refuse, before any work, outputs that would destroy an input, each other, or a file not ours.

    `inputs` maps each input's option (e.g. --flair) to its file; `names` gives the options of the
    two outputs, for the messages; `brain_mask` is the optional third output (--brain-mask).
    """
    check_output_path(output)
    outputs = {names["output"]: output, names["summary"]: summary, "--brain-mask": brain_mask}
    check_distinct(outputs, inputs)
    if brain_mask is not None:
        check_output_path(brain_mask)
        check_replaceable(brain_mask, lambda p: is_ours(p, BRAIN_MASK), overwrite, BRAIN_MASK)
        check_writable(Path(brain_mask).parent)
    check_replaceable(output, lambda p: is_ours(p, LABEL_MAP), overwrite, LABEL_MAP)
    for companion in format_files(output)[1:]:  # the voxels of a detached header belong to its header
        check_replaceable(
            companion, lambda p: is_ours(output, LABEL_MAP), overwrite, "label map's voxel file"
        )
    if summary is not None:
        check_replaceable(summary, is_our_summary, overwrite, "summary")
    for path in (output, summary):
        if path is not None:
            check_writable(path.parent)


def check_space(output: Path, summary: Optional[Path], reference: sitk.Image) -> None:
    """Refuse a disk without room for a label map on the reference's grid (and the summary)."""
    labels = sitk.Image(reference.GetSize(), sitk.sitkUInt8)
    check_writable(output.parent, image_bytes(labels) + _SMALL_FILES_BYTES)
    if summary is not None:
        check_writable(summary.parent, _SMALL_FILES_BYTES)


def write_result(
    result: SegmentationResult,
    output: Union[str, Path],
    summary: Optional[Union[str, Path]] = None,
    extra: Optional[Mapping[str, Any]] = None,
    brain_mask: Optional[Union[str, Path]] = None,
) -> Dict[str, Any]:
    """Write the label map (and the summary JSON and brain mask, when paths are given); returns the summary.

    The summary's timings gain `write` and `total` (the sum of the stages); `extra` adds fields; the
    brain mask needs a result that holds one (Predictor.segment(..., brain_mask=True)). A failure
    leaves none of the files.
    """
    output = check_output_path(output)
    started = time.perf_counter()
    mask = None
    if brain_mask is not None:
        if result.brain_mask is None:
            raise ValueError("this result holds no brain mask; segment with brain_mask=True")
        mask = stage_image(result.brain_mask, check_output_path(brain_mask), BRAIN_MASK)
    labels = stage_image(result.labels, output, LABEL_MAP)
    try:
        data = {**result.summary(output), **(extra or {})}
        if brain_mask is not None:
            data["brain_mask"] = os.path.abspath(brain_mask)
        data["timings_s"]["write"] = round(time.perf_counter() - started, 3)
        data["timings_s"]["total"] = round(sum(data["timings_s"].values()), 3)
        written = []
        try:
            if summary is not None:
                written.append(write_text(summary, json.dumps(data, indent=2) + "\n"))
            if mask is not None:
                written.append(mask.commit())
            labels.commit()
        except MSTKDError:
            for path in written:  # a summary without its label map would count as a finished case
                for file in format_files(Path(path)):  # a .nhdr header and its voxel file
                    file.unlink(missing_ok=True)
            raise
    finally:
        labels.discard()
        if mask is not None:
            mask.discard()
    return data


def is_our_summary(path: Path) -> bool:
    """True for a JSON summary written by `mstkd segment` (or `mstkd demo`)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("written_by") == SUMMARY_WRITER


def is_finished(output: Path, summary: Path) -> bool:
    """True when a case's label map and summary are both mstkd's and the label map reads back whole."""
    if not (output.is_file() and is_ours(output, LABEL_MAP) and is_our_summary(summary)):
        return False
    try:
        read_image(output)
    except MSTKDError:
        return False
    return True
