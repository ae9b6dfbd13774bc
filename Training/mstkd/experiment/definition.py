"""An experiment config: the method, its network sizes, the patch, the loss, the data and the training.

Top-level sections of an experiment YAML:
  method: mstkd | magms | baseline
  patch:  [D, H, W]   the training crop and the sliding-window size at inference
  model:  MSTKDNetConfig for mstkd and baseline, MAGMSConfig for magms
  loss:   LossConfig
  data:   DataConfig (where the cases are, splits, normalisation, crops, augmentation)
  train:  TrainConfig (optimisation, precision, schedule, device)
  output: OutputConfig (label rule and post-processing of validation and of the model file)
The baseline is the MST-KDNet student trained alone with modality dropout: no new network.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Tuple, Union

from mstkd.conventions import ARGMAX_RULE, EXCLUSIVE_RULE
from mstkd.errors import MSTKDError
from mstkd.experiment.sections import DataConfig, OutputConfig, TrainConfig
from mstkd.losses.config import LossConfig
from mstkd.models.config import ENCODER_STRIDE, MAGMSConfig, MSTKDNetConfig
from mstkd.typed_config import apply_overrides, convert, from_mapping, read_config_file

METHODS: Tuple[str, ...] = ("mstkd", "magms", "baseline")
MODEL_SECTIONS: Dict[str, type] = {"mstkd": MSTKDNetConfig, "baseline": MSTKDNetConfig, "magms": MAGMSConfig}
SECTIONS: Tuple[str, ...] = ("method", "patch", "model", "loss", "data", "train", "output")
# Each method's own label rule: MST-KDNet's independent sigmoids are read one tumour channel per
# voxel; MAG-MS's softmax by its most probable class.
DEFAULT_LABEL_RULES: Dict[str, str] = {
    "mstkd": EXCLUSIVE_RULE,
    "baseline": EXCLUSIVE_RULE,
    "magms": ARGMAX_RULE,
}

ModelConfig = Union[MSTKDNetConfig, MAGMSConfig]


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment: what to train, at which sizes, on which crop, with which loss."""

    method: str
    model: ModelConfig
    patch: Tuple[int, int, int]
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise MSTKDError(f"Unknown method '{self.method}'; choose one of {', '.join(METHODS)}.")
        if self.output.label_rule is None:
            resolved = dataclasses.replace(self.output, label_rule=DEFAULT_LABEL_RULES[self.method])
            object.__setattr__(self, "output", resolved)
        if not isinstance(self.model, MODEL_SECTIONS[self.method]):
            raise MSTKDError(
                f"Method '{self.method}' needs a {MODEL_SECTIONS[self.method].__name__} model section."
            )
        multiple = self.model.patch_multiple
        if len(self.patch) != 3 or any(side <= 0 or side % multiple for side in self.patch):
            raise MSTKDError(
                f"patch {list(self.patch)} must be three positive multiples of {multiple} "
                f"(the total stride of the '{self.method}' network), e.g. {[5 * multiple] * 3}."
            )
        if self.data.augmentation.rotate90_probability > 0 and self.patch[0] != self.patch[1]:
            raise MSTKDError(
                f"data.augmentation.rotate90_probability turns patches in their first two axes, so "
                f"patch {list(self.patch)} needs equal first two sides (e.g. [112, 112, 112])."
            )
        if self.method == "mstkd":
            smallest = ENCODER_STRIDE * 2 ** len(self.model.discriminator_widths)
            if min(self.patch) < smallest:
                raise MSTKDError(
                    f"patch {list(self.patch)} is too small for the style discriminator's "
                    f"{len(self.model.discriminator_widths)} stride-2 convolutions: every side must be "
                    f"at least {smallest}; enlarge the patch or shorten model.discriminator_widths."
                )


def experiment_from_mapping(data: Mapping[str, Any]) -> ExperimentConfig:
    """Build an ExperimentConfig from parsed YAML (or from `typed_config.to_mapping` of one)."""
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise MSTKDError(
            f"Unknown section(s) {', '.join(unknown)} in the experiment config; "
            f"the sections are: {', '.join(SECTIONS)}."
        )
    method = data.get("method")
    if method not in METHODS:
        raise MSTKDError(f"Set 'method:' to one of {', '.join(METHODS)} (got {method!r}).")
    if data.get("patch") is None:
        raise MSTKDError("Set 'patch: [D, H, W]', the training crop (e.g. [160, 192, 128]).")
    return ExperimentConfig(
        method=method,
        model=from_mapping(MODEL_SECTIONS[method], data.get("model"), "model"),
        patch=convert(Tuple[int, int, int], data["patch"], "patch"),
        loss=from_mapping(LossConfig, data.get("loss"), "loss"),
        data=from_mapping(DataConfig, data.get("data"), "data"),
        train=from_mapping(TrainConfig, data.get("train"), "train"),
        output=from_mapping(OutputConfig, data.get("output"), "output"),
    )


def load_experiment(path: Union[str, Path], overrides: Iterable[str] = ()) -> ExperimentConfig:
    """Read an experiment YAML (with `extends:`) and apply `section.key=value` overrides."""
    return experiment_from_mapping(apply_overrides(read_config_file(path), overrides))
