"""The out-of-distribution test set's contrast table: another scanner and protocol than the training's.

Same radiological rules as `contrast` (oedema bright on FLAIR and T2, enhancement only after
gadolinium, CSF dark on FLAIR and T1), other values: weaker grey/white contrast, CSF less
suppressed on FLAIR, oedema closer to grey matter, enhancement from faint to strong, a cyst's
fluid, and twice the case-to-case variation.
"""

from __future__ import annotations

from typing import Dict

import numpy as np

from mstkd.phantom.anatomy import Anatomy
from mstkd.phantom.contrast import Contrast, compose, sample_contrast
from mstkd.phantom.grid import Box
from mstkd.phantom.ood_tumour import OODTumourPlan
from mstkd.phantom.tumour import Lesion, TumourPlan

MEAN_SIGNAL: Dict[str, Dict[str, float]] = {
    "flair": {
        "csf": 0.24,
        "gm": 0.66,
        "wm": 0.52,
        "ncr": 0.48,
        "net": 0.86,
        "et": 0.74,
        "ed": 0.88,
        "cyst": 0.34,
    },
    "t1": {
        "csf": 0.34,
        "gm": 0.74,
        "wm": 0.92,
        "ncr": 0.46,
        "net": 0.64,
        "et": 0.70,
        "ed": 0.74,
        "cyst": 0.30,
    },
    "t1ce": {
        "csf": 0.36,
        "gm": 0.72,
        "wm": 0.90,
        "ncr": 0.44,
        "net": 0.66,
        "et": 1.3,
        "ed": 0.74,
        "cyst": 0.32,
    },
    "t2": {
        "csf": 1.00,
        "gm": 0.62,
        "wm": 0.46,
        "ncr": 0.84,
        "net": 0.74,
        "et": 0.60,
        "ed": 0.80,
        "cyst": 1.02,
    },
}
SIGNAL_VARIATION = 0.1
ENHANCEMENT_RANGE = (0.45, 2.0)  # times the table's excess over white matter (training: 0.7-1.4)
TUMOUR_TEXTURE = (0.14, 0.25)  # more heterogeneous tumours than the training's 0.04-0.12


def sample_ood_contrast(rng: np.random.Generator) -> Contrast:
    """Draw one case's contrast around this module's MEAN_SIGNAL, with its ranges."""
    return sample_contrast(rng, MEAN_SIGNAL, SIGNAL_VARIATION, ENHANCEMENT_RANGE, TUMOUR_TEXTURE)


def compose_ood(
    contrast: Contrast, sequence: str, anatomy: Anatomy, lesion: Lesion, block: Box, plan: TumourPlan
) -> np.ndarray:
    """As `contrast.compose`; a cystic tumour's core reads as fluid instead of necrosis."""
    if isinstance(plan, OODTumourPlan) and plan.cystic:
        signal = {**contrast.signal[sequence], "ncr": contrast.signal[sequence]["cyst"]}
        contrast = Contrast(signal={**contrast.signal, sequence: signal}, texture=contrast.texture)
    return compose(contrast, sequence, anatomy, lesion, block, plan)
