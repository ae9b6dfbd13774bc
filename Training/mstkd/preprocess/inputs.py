"""An exam's inputs read and checked before any model is loaded, so that a bad input costs no model time.

Files are read (refusing damaged, truncated and non-finite ones), every volume passes the
preflight (a valid 3D MR volume) and the plausibility checks (an MR image of one brain; suspect
inputs give warnings). Nothing here imports PyTorch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Union

import psutil
import SimpleITK as sitk

from mstkd.conventions import DISPLAY_NAMES, SequenceMap, sequence_map
from mstkd.errors import MSTKDError
from mstkd.imageio import read_header, read_image
from mstkd.preprocess.plausibility import check_plausible
from mstkd.preprocess.preflight import preflight
from mstkd.preprocess.reference import choose_reference

SequenceInput = Union[str, Path, sitk.Image]
# Reading a volume, converting it to float32 and preprocessing it take a few copies of it.
MEMORY_COPIES = 4


@dataclass
class ExamInputs:
    """The volumes of one exam (canonical order), its reference sequence, and what looked suspect."""

    images: SequenceMap[sitk.Image]
    reference: str
    warnings: List[str] = field(default_factory=list)
    read_s: float = 0.0


def read_exam(
    sequences: Mapping[str, Optional[SequenceInput]],
    reference: Optional[str] = None,
    report: Callable[[float, str], None] = lambda fraction, message: None,
) -> ExamInputs:
    """Read (files) or take (images) each sequence, check them, and choose the reference.

    `sequences` maps names (aliases accepted; None means absent) to files or SimpleITK images.
    """
    inputs = sequence_map(sequences)
    chosen = choose_reference(inputs, reference)
    started = time.perf_counter()
    images: Dict[str, sitk.Image] = {}
    for index, (sequence, item) in enumerate(inputs.items()):
        if isinstance(item, sitk.Image):
            images[sequence] = item
            continue
        if not isinstance(item, (str, Path)):
            raise MSTKDError(
                f"The {DISPLAY_NAMES[sequence]} input is a {type(item).__name__}; give a file path or a "
                "SimpleITK image."
            )
        report(index / len(inputs), f"reading {DISPLAY_NAMES[sequence]} ({Path(item).name})")
        images[sequence] = _read_sequence(sequence, Path(item))
    report(1.0, f"read {', '.join(DISPLAY_NAMES[s] for s in images)}")
    read_s = time.perf_counter() - started
    for sequence, image in images.items():
        preflight(sequence, image)
    return ExamInputs(SequenceMap(images), chosen, check_plausible(images), read_s)


def _read_sequence(sequence: str, path: Path) -> sitk.Image:
    """Read one file, refusing first (from its header) a volume too large for the free memory."""
    header = read_header(path)
    voxels = 1
    for size in header.GetSize():
        voxels *= size
    stored = (
        voxels
        * header.GetNumberOfComponents()
        * sitk.Image(1, 1, header.GetPixelID()).GetSizeOfPixelComponent()
    )
    needed = stored + MEMORY_COPIES * voxels * 4
    available = psutil.virtual_memory().available
    if needed > available:
        raise MSTKDError(
            f"The {DISPLAY_NAMES[sequence]} volume {path} has {' x '.join(str(s) for s in header.GetSize())} "
            f"voxels and needs about {needed / 1e9:.1f} GB of memory to segment, more than the "
            f"{available / 1e9:.1f} GB free; check its header, or use a machine with more memory."
        )
    try:
        return read_image(path)
    except MemoryError:
        raise MSTKDError(
            f"Not enough memory to read the {DISPLAY_NAMES[sequence]} volume {path}; close other programs "
            "or use a machine with more memory."
        ) from None
