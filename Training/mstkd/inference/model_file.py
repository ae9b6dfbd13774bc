"""A model file loaded for inference: the network rebuilt from the file's own metadata."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
from torch import nn

from mstkd.checkpoint import experiment_of, load_checkpoint, unverified_metadata
from mstkd.conventions import LabelConvention, label_convention
from mstkd.devices import inference_memory_format
from mstkd.errors import MSTKDError
from mstkd.experiment import ExperimentConfig, build_inference_network
from mstkd.experiment.sections import OutputConfig


@dataclass
class TrainedModel:
    """The inference network of a model file, with what it was trained for."""

    network: nn.Module
    experiment: ExperimentConfig
    metadata: Dict[str, Any]
    path: Path
    sha256: str
    warnings: List[str] = field(default_factory=list)

    @property
    def patch(self) -> Tuple[int, int, int]:
        """The sliding-window size (the training crop)."""
        return self.experiment.patch

    @property
    def labels(self) -> LabelConvention:
        """The label convention of the model's training data (and of its output label maps)."""
        return label_convention(self.metadata["labels"])

    @property
    def spacing(self) -> Tuple[float, float, float]:
        """The voxel spacing (mm) the model was trained at."""
        return tuple(float(s) for s in self.metadata["spacing"])

    @property
    def output(self) -> OutputConfig:
        """How the model's probabilities become labels (its label rule and post-processing)."""
        return self.experiment.output

    def with_output(self, **changes: Any) -> TrainedModel:
        """The same model reporting labels under other `output:` settings (e.g. label_rule=...)."""
        chosen = {key: value for key, value in changes.items() if value is not None}
        try:
            output = dataclasses.replace(self.experiment.output, **chosen)
        except TypeError as error:
            raise MSTKDError(f"Unknown output setting: {error}") from None
        return dataclasses.replace(self, experiment=dataclasses.replace(self.experiment, output=output))


def load_trained_model(
    path: Union[str, Path], device: torch.device, expected_sha256: Optional[str] = None
) -> TrainedModel:
    """Read a model file (refusing damaged or foreign ones) and rebuild its network on `device`.

    The network is laid out in memory as `device` runs it fastest (`inference_memory_format`).
    """
    checkpoint = load_checkpoint(path, expected_sha256)
    experiment = experiment_of(checkpoint)
    try:
        network = build_inference_network(experiment, torch.device("meta"))
    except (ValueError, RuntimeError, TypeError) as error:
        raise MSTKDError(
            f"The model file {checkpoint.path} describes a network that cannot be built ({error}); its "
            "metadata are damaged or it needs another mstkd version."
        ) from None
    try:
        network.load_state_dict(checkpoint.state_dict, strict=True, assign=True)
    except RuntimeError as error:
        raise MSTKDError(
            f"{checkpoint.path} does not hold the weights of the network its metadata describes "
            f"({str(error).splitlines()[0]}); it is not an inference model file (use student.safetensors)."
        ) from None
    network.to(device, memory_format=inference_memory_format(device)).eval()
    return TrainedModel(
        network,
        experiment,
        checkpoint.metadata,
        checkpoint.path,
        checkpoint.sha256,
        unverified_metadata(checkpoint),
    )
