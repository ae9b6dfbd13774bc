"""Validation Dice per region of the network being trained, over chosen subsets of sequences."""

from __future__ import annotations

from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from mstkd.conventions import REGIONS, LabelConvention, Subset, region_masks
from mstkd.dataset import Case
from mstkd.inference.window import predict_scores, score_function
from mstkd.intensity import normalise_sequences
from mstkd.metrics import dice
from mstkd.targets import channels_to_labels
from mstkd.training.data import LABEL, RAW, cached_transform, case_record

MEAN = "mean"


def load_validation_cases(cases: Sequence[Case], labels: LabelConvention) -> List[Mapping[str, np.ndarray]]:
    """Read the validation cases once: raw sequences and label map, cropped to the brain."""
    transform = cached_transform(labels)
    return [transform(case_record(case)) for case in cases]


def validate(
    network: nn.Module,
    cases: Sequence[Mapping[str, np.ndarray]],
    subsets: Sequence[Subset],
    patch: Tuple[int, int, int],
    labels: LabelConvention,
    device: torch.device,
    bf16: bool = False,
) -> Dict[str, float]:
    """Mean Dice of WT, TC, ET (and their mean) over every case and subset, whole volumes."""
    was_training = network.training
    network.eval()
    scores: Dict[str, List[float]] = {region: [] for region in REGIONS}
    try:
        for case in cases:
            reference = region_masks(np.asarray(case[LABEL])[0], labels)
            for subset in subsets:
                image = torch.from_numpy(normalise_sequences(np.asarray(case[RAW]), subset.mask))[None]
                probabilities = predict_scores(
                    score_function(network, subset.mask), image, patch, device, bf16=bf16
                )
                predicted = region_masks(channels_to_labels(probabilities, labels)[0].numpy(), labels)
                for region in REGIONS:
                    scores[region].append(dice(reference[region], predicted[region]))
    finally:
        network.train(was_training)
    result = {region: float(np.mean(values)) for region, values in scores.items()}
    result[MEAN] = float(np.mean(list(result.values())))
    return result
