"""Domain-randomised images drawn from a phantom's class map (the SynthSeg idea, adapted to tumours).

For each training sample and each sequence, every class of the map (PHANTOM_CLASSES) gets a mean
intensity drawn at random, kept only when it respects the orderings radiologists read (ORDERINGS:
oedema brighter than white matter on FLAIR and T2, enhancing tumour brighter than necrosis and
white matter on T1Gd, CSF dark on FLAIR and T1, ...). The network so learns these relations and
the shapes, not one generator's contrast table. A smooth texture of random scale and strength per
class and a partial-volume blur follow; acquisition artefacts (bias, gamma, noise, resolution) are
the augmentations of `training.augment`, which apply to real images as well.
"""

from __future__ import annotations

from typing import Any, Dict, Hashable, Mapping, Tuple

import numpy as np
import torch
from monai.transforms import MapTransform, Randomizable
from scipy import ndimage

from mstkd.conventions import PHANTOM_CLASSES, SEQUENCES

# (brighter, darker) pairs per sequence.
ORDERINGS: Dict[str, Tuple[Tuple[str, str], ...]] = {
    "flair": (("gm", "csf"), ("wm", "csf"), ("gm", "wm"), ("ed", "wm"), ("ed", "gm"), ("net", "wm")),
    "t1": (("wm", "gm"), ("gm", "csf"), ("wm", "ncr"), ("wm", "net"), ("wm", "ed"), ("wm", "et")),
    "t1ce": (
        ("wm", "gm"),
        ("gm", "csf"),
        ("wm", "ncr"),
        ("wm", "net"),
        ("wm", "ed"),
        ("et", "wm"),
        ("et", "gm"),
        ("et", "ncr"),
        ("et", "net"),
        ("et", "ed"),
    ),
    "t2": (("csf", "gm"), ("gm", "wm"), ("ed", "wm"), ("ed", "gm"), ("ncr", "wm"), ("net", "wm")),
}
MEAN_RANGE = (0.05, 1.0)
# A brighter class is at least this many times as bright as the darker one: visible through noise.
MARGIN = 1.15
# Candidate contrasts drawn at once; a few per thousand satisfy T1Gd's ten orderings.
CANDIDATES = 4096
# Each class's texture: relative amplitude of a smooth field drawn on a grid this many voxels coarse.
TEXTURE_STRENGTH = (0.0, 0.15)
TEXTURE_COARSENESS = (2.0, 8.0)
PARTIAL_VOLUME_SIGMA_VOXELS = (0.3, 1.0)
# Brain voxels stay above zero: zero means "outside the brain" to the normalisation.
FLOOR = 1e-3

CLASS_NAMES: Tuple[str, ...] = tuple(sorted(PHANTOM_CLASSES, key=PHANTOM_CLASSES.get))


def draw_means(rng: np.random.Generator, sequence: str) -> Dict[str, float]:
    """One mean intensity per class on `sequence`, uniform within MEAN_RANGE under its ORDERINGS."""
    index = {name: column for column, name in enumerate(CLASS_NAMES)}
    while True:
        candidates = rng.uniform(*MEAN_RANGE, size=(CANDIDATES, len(CLASS_NAMES)))
        valid = np.ones(CANDIDATES, dtype=bool)
        for brighter, darker in ORDERINGS[sequence]:
            valid &= candidates[:, index[brighter]] >= MARGIN * candidates[:, index[darker]]
        found = np.flatnonzero(valid)
        if len(found):
            return dict(zip(CLASS_NAMES, (float(v) for v in candidates[found[0]])))


def _smooth_field(rng: np.random.Generator, shape: Tuple[int, ...]) -> np.ndarray:
    """Unit-variance noise drawn on a coarse grid and interpolated: texture blobs of random size."""
    coarseness = rng.uniform(*TEXTURE_COARSENESS)
    coarse = [max(2, int(np.ceil(n / coarseness))) for n in shape]
    noise = torch.from_numpy(rng.standard_normal(coarse, dtype=np.float32))[None, None]
    field = torch.nn.functional.interpolate(noise, size=tuple(shape), mode="trilinear", align_corners=False)
    field = field[0, 0].numpy()
    return field / max(float(field.std()), 1e-6)


def synthesise(classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(4, ...) float32 images in canonical sequence order from a class map; 0 outside the brain."""
    brain = classes > 0
    images = np.zeros((len(SEQUENCES), *classes.shape), dtype=np.float32)
    sigma = rng.uniform(*PARTIAL_VOLUME_SIGMA_VOXELS)
    for channel, sequence in enumerate(SEQUENCES):
        means = draw_means(rng, sequence)
        lookup = np.zeros(max(PHANTOM_CLASSES.values()) + 1, dtype=np.float32)
        strength = np.zeros_like(lookup)
        for name, value in PHANTOM_CLASSES.items():
            lookup[value] = means[name]
            strength[value] = rng.uniform(*TEXTURE_STRENGTH)
        texture = 1.0 + strength[classes] * _smooth_field(rng, classes.shape)
        image = ndimage.gaussian_filter(lookup[classes] * texture, sigma)
        images[channel] = np.where(brain, np.maximum(image, FLOOR), 0.0)
    return images


class SynthesiseSequencesd(Randomizable, MapTransform):
    """With probability `probability`, replace the raw sequences by images drawn from the class map.

    The class map key is dropped either way; the label map is untouched (it derives from the same
    class map, so images and labels agree voxel for voxel).
    """

    def __init__(self, raw_key: str, classes_key: str, probability: float) -> None:
        super().__init__(keys=[classes_key])
        self.raw_key, self.classes_key, self.probability = raw_key, classes_key, probability

    def randomize(self, data: Any = None) -> None:
        self.apply = self.R.random_sample() < self.probability
        self.seed = int(self.R.randint(2**31))

    def __call__(self, sample: Mapping[Hashable, Any]) -> Dict[Hashable, Any]:
        self.randomize()
        out = {k: v for k, v in sample.items() if k != self.classes_key}
        if self.apply:
            classes = np.asarray(sample[self.classes_key])[0].astype(np.intp)
            out[self.raw_key] = synthesise(classes, np.random.default_rng(self.seed))
        return out
