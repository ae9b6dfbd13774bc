"""A model file loaded for inference: the network rebuilt from the file's own metadata."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch
from torch import nn

from mstkd.checkpoint import experiment_of, load_checkpoint
from mstkd.conventions import LabelConvention, label_convention
from mstkd.devices import inference_memory_format
from mstkd.errors import MSTKDError
from mstkd.experiment import ExperimentConfig, build_inference_network


@dataclass
class TrainedModel:
    """The inference network of a model file, with what it was trained for."""

    network: nn.Module
    experiment: ExperimentConfig
    metadata: Dict[str, Any]
    path: Path
    sha256: str

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


def load_trained_model(
    path: Union[str, Path], device: torch.device, expected_sha256: Optional[str] = None
) -> TrainedModel:
    """Read a model file (refusing damaged or foreign ones) and rebuild its network on `device`.

    The network is laid out in memory as `device` runs it fastest (`inference_memory_format`).
    """
    checkpoint = load_checkpoint(path, expected_sha256)
    experiment = experiment_of(checkpoint)
    network = build_inference_network(experiment, torch.device("meta"))
    try:
        network.load_state_dict(checkpoint.state_dict, strict=True, assign=True)
    except RuntimeError as error:
        raise MSTKDError(
            f"{checkpoint.path} does not hold the weights of the network its metadata describes "
            f"({str(error).splitlines()[0]}); it is not an inference model file (use student.safetensors)."
        ) from None
    network.to(device, memory_format=inference_memory_format(device)).eval()
    return TrainedModel(network, experiment, checkpoint.metadata, checkpoint.path, checkpoint.sha256)
