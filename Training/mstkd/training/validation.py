"""Validation Dice per region of the network being trained, over chosen subsets of sequences."""

from __future__ import annotations

from typing import Dict, List, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from mstkd.bias_field import NONE
from mstkd.cases import Case
from mstkd.conventions import REGIONS, LabelConvention, Subset, label_convention, region_masks
from mstkd.experiment import ExperimentConfig
from mstkd.intensity import brain_mask, normalise_sequences
from mstkd.metrics import dice
from mstkd.prediction.labelmap import predict_labels
from mstkd.training.data import LABEL, RAW, cached_transform, case_record

MEAN = "mean"


def load_validation_cases(
    cases: Sequence[Case], labels: LabelConvention, bias_correction: str = NONE
) -> List[Mapping[str, np.ndarray]]:
    """Read the validation cases once: raw sequences (bias-corrected as asked) and label map, cropped
    to the brain."""
    transform = cached_transform(labels, bias_correction=bias_correction)
    return [transform(case_record(case)) for case in cases]


def validate(
    network: nn.Module,
    cases: Sequence[Mapping[str, np.ndarray]],
    subsets: Sequence[Subset],
    experiment: ExperimentConfig,
    device: torch.device,
) -> Dict[str, float]:
    """Mean Dice of WT, TC, ET (and their mean) over every case and subset, whole volumes.

    The experiment gives the patch, labels, normalisation, precision and the label rule.
    """
    labels = label_convention(experiment.data.labels)
    was_training = network.training
    network.eval()
    scores: Dict[str, List[float]] = {region: [] for region in REGIONS}
    try:
        for case in cases:
            raw = np.asarray(case[RAW])
            reference = region_masks(np.asarray(case[LABEL])[0], labels)
            for subset in subsets:
                image = normalise_sequences(raw, subset.mask, experiment.data.normalisation)
                predicted = predict_labels(
                    network,
                    experiment.patch,
                    labels,
                    image,
                    subset.mask,
                    device,
                    bf16=experiment.train.bf16,
                    mask=brain_mask(raw, subset.mask),
                    output=experiment.output,
                )
                predicted_regions = region_masks(predicted, labels)
                for region in REGIONS:
                    scores[region].append(dice(reference[region], predicted_regions[region]))
    finally:
        network.train(was_training)
    result = {region: float(np.mean(values)) for region, values in scores.items()}
    result[MEAN] = float(np.mean(list(result.values())))
    return result
