"""How each tissue and tumour sub-region looks on each sequence, with per-case variation.

Signals are relative (white matter on T1 = 1) and follow what radiologists read: T1 WM > GM > CSF,
necrosis dark, oedema slightly dark; T1ce the same plus a bright enhancing rim; T2 CSF > GM > WM
with bright oedema and necrosis; FLAIR GM > WM, CSF suppressed, oedema the brightest thing.
'net' is the core of a non-enhancing tumour: it replaces 'ncr' when a tumour does not enhance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

from mstkd.conventions import SEQUENCES
from mstkd.phantom.anatomy import Anatomy
from mstkd.phantom.grid import Box
from mstkd.phantom.tumour import Lesion, TumourPlan

MEAN_SIGNAL: Dict[str, Dict[str, float]] = {
    "flair": {"csf": 0.10, "gm": 0.72, "wm": 0.48, "ncr": 0.62, "net": 0.92, "et": 0.82, "ed": 1.05},
    "t1": {"csf": 0.28, "gm": 0.76, "wm": 1.00, "ncr": 0.36, "net": 0.58, "et": 0.78, "ed": 0.70},
    "t1ce": {"csf": 0.30, "gm": 0.72, "wm": 1.00, "ncr": 0.34, "net": 0.60, "et": 1.5, "ed": 0.72},
    "t2": {"csf": 1.00, "gm": 0.52, "wm": 0.38, "ncr": 0.95, "net": 0.80, "et": 0.65, "ed": 0.86},
}
# Relative standard deviation of each signal from case to case (scanners and tumours differ).
SIGNAL_VARIATION = 0.05
# Gadolinium uptake differs more between tumours than anything else: the enhancing tumour's excess
# over this case's white matter is the table's excess times a factor in this range.
ENHANCEMENT_RANGE = (0.7, 1.4)
# Tumour tissue is heterogeneous: relative amplitude of its texture.
TUMOUR_TEXTURE = (0.04, 0.12)
# Oedema is water in otherwise normal tissue: far more uniform than the tumour itself.
OEDEMA_TEXTURE_FRACTION = 0.3


@dataclass(frozen=True)
class Contrast:
    """One case's signal of every tissue and sub-region on every sequence, and its tumour texture."""

    signal: Dict[str, Dict[str, float]]
    texture: float


def sample_contrast(
    rng: np.random.Generator,
    table: Dict[str, Dict[str, float]] = MEAN_SIGNAL,
    variation: float = SIGNAL_VARIATION,
    enhancement: Tuple[float, float] = ENHANCEMENT_RANGE,
    texture: Tuple[float, float] = TUMOUR_TEXTURE,
) -> Contrast:
    """Draw one case's contrast around `table` (by default MEAN_SIGNAL and this module's ranges)."""
    signal = {
        sequence: {
            name: value * float(1.0 + variation * rng.standard_normal())
            for name, value in table[sequence].items()
        }
        for sequence in SEQUENCES
    }
    nominal_excess = table["t1ce"]["et"] / table["t1ce"]["wm"] - 1.0
    excess = nominal_excess * float(rng.uniform(*enhancement))
    signal["t1ce"]["et"] = signal["t1ce"]["wm"] * (1.0 + excess)
    return Contrast(signal=signal, texture=float(rng.uniform(*texture)))


def compose(
    contrast: Contrast, sequence: str, anatomy: Anatomy, lesion: Lesion, block: Box, plan: TumourPlan
) -> np.ndarray:
    """Noise-free signal on the anatomy's arrays, the lesion's arrays lying at `block` in them."""
    signal = contrast.signal[sequence]
    image = anatomy.csf * signal["csf"] + anatomy.gm * signal["gm"] + anatomy.wm * signal["wm"]
    core = signal["ncr"] if plan.enhancing else signal["net"]
    weight = lesion.ncr + lesion.et + lesion.ed
    texture = contrast.texture * lesion.texture
    tumour = (lesion.ncr * core + lesion.et * signal["et"]) * (1.0 + texture) + lesion.ed * signal["ed"] * (
        1.0 + OEDEMA_TEXTURE_FRACTION * texture
    )
    image[block] = image[block] * (1.0 - weight) + tumour
    return image.astype(np.float32)
