"""A model's per-subset validation table, written into (a copy of) its model file.

The table is what mstkd.trust reads at segmentation time to tell which regions the given
sequences can support: the mean Dice of every region from every evaluated subset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np

from mstkd.checkpoint import WEIGHTS_DIGEST_KEY, is_model_file, load_checkpoint, save_checkpoint
from mstkd.errors import MSTKDError
from mstkd.evaluation.protocol import ProtocolResult
from mstkd.experiment.sections import OutputConfig
from mstkd.files import check_replaceable
from mstkd.trust import VALIDATION_KEY
from mstkd.typed_config import to_mapping


def validation_table(result: ProtocolResult) -> Dict[str, Any]:
    """The mean Dice of each region per subset (keyed 'flair,t2'), with the convention, cases and split."""
    dice = {}
    for subset in result.subsets:
        scores = [s.regions for s in result.scores if s.subset == subset]
        dice[subset.key] = {r: round(float(np.mean([s[r].dice for s in scores])), 4) for r in result.regions}
    return {
        "convention": result.convention.name,
        "cases": result.case_count,
        "split": result.split,
        "dice": dice,
    }


def check_model_out(source: Union[str, Path], target: Union[str, Path], overwrite: bool = False) -> Path:
    """The path of the annotated copy: never the source, nor a file mstkd did not write unless `overwrite`."""
    target = Path(target)
    if target.resolve() == Path(source).resolve():
        raise MSTKDError(f"{target} is the model evaluated; write the annotated copy under another name.")
    check_replaceable(target, is_model_file, overwrite, "model file")
    return target


def write_model_with_validation(
    source: Union[str, Path],
    table: Dict[str, Any],
    target: Union[str, Path],
    output: Optional[OutputConfig] = None,
    overwrite: bool = False,
) -> str:
    """Write a copy of a model file whose metadata carries `table`; returns the copy's sha256.

    `output`, the settings the table was measured with where they are not the file's own (a label
    rule, a clean-up, mirroring chosen for the evaluation), becomes the copy's, so that the copy
    segments as its table says. The weights are unchanged; the source is never overwritten, nor
    a file at `target` that mstkd did not write unless `overwrite`.
    """
    source, target = Path(source), check_model_out(source, target, overwrite)
    checkpoint = load_checkpoint(source)
    metadata = {key: value for key, value in checkpoint.metadata.items() if key != WEIGHTS_DIGEST_KEY}
    if output is not None:
        metadata["experiment"] = {**metadata["experiment"], "output": to_mapping(output)}
    return save_checkpoint(target, checkpoint.state_dict, {**metadata, VALIDATION_KEY: table})
