"""Domain-randomised images drawn from a phantom's class map (the SynthSeg idea, adapted to tumours).

For each training sample and each sequence, every class of the map (PHANTOM_CLASSES) gets a mean
intensity drawn at random, kept only when it respects the orderings radiologists read (ORDERINGS:
oedema brighter than white matter on FLAIR and T2, enhancing tumour brighter than necrosis and
white matter on T1Gd, CSF dark on FLAIR and T1, ...). The network so learns these relations and
the shapes, not one generator's contrast table. A smooth texture of random scale and strength per
class, oedema fading into the tissue around it (`fade_oedema`) and a partial-volume blur follow;
acquisition artefacts (bias, gamma, noise, resolution) are
the augmentations of `training.augment`, which apply to real images as well. The tumour itself
can be redrawn too (`training.tumour_shapes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Hashable, Mapping, Optional, Tuple

import numpy as np
from monai.transforms import MapTransform, Randomizable
from scipy import ndimage

from mstkd.boxes import bounding_box, grown
from mstkd.conventions import PHANTOM_CLASSES, SEQUENCES, LabelConvention
from mstkd.training.tumour_shapes import labels_from_classes, random_tumour, smooth_noise

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
MARGIN = 1.1
# Except grey against white matter: their contrast is what scanners and protocols change most (FLAIR
# hardly separates them at 3 T), so it may vanish, though it never reverses. A network that always
# saw them apart takes a flat brain's deep white matter for oedema.
HEALTHY_PAIR = frozenset(("gm", "wm"))
HEALTHY_MARGIN = 1.0
# Candidate contrasts drawn at once; a few per thousand satisfy T1Gd's ten orderings.
CANDIDATES = 4096
# Each class's texture: relative amplitude of a smooth field drawn on a grid this many voxels coarse.
TEXTURE_STRENGTH = (0.0, 0.25)
TEXTURE_COARSENESS = (2.0, 8.0)
PARTIAL_VOLUME_SIGMA_VOXELS = (0.3, 1.0)
# Oedema's share of a voxel falls from 1 to 0 across this many voxels either side of its label's edge.
OEDEMA_FADE_VOXELS = (0.0, 3.0)
# Scale (voxels) over which the tissue beneath the oedema is guessed from the healthy tissue around it.
BENEATH_SIGMA_VOXELS = 3.0
# Brain voxels stay above zero: zero means "outside the brain" to the normalisation.
FLOOR = 1e-3

HEALTHY_TISSUE = (PHANTOM_CLASSES["gm"], PHANTOM_CLASSES["wm"])
CLASS_NAMES: Tuple[str, ...] = tuple(sorted(PHANTOM_CLASSES, key=PHANTOM_CLASSES.get))


def margin(brighter: str, darker: str) -> float:
    """How many times as bright as `darker` the `brighter` class of an ordering is at least."""
    return HEALTHY_MARGIN if {brighter, darker} == HEALTHY_PAIR else MARGIN


def draw_means(rng: np.random.Generator, sequence: str) -> Dict[str, float]:
    """One mean intensity per class on `sequence`, uniform within MEAN_RANGE under its ORDERINGS."""
    index = {name: column for column, name in enumerate(CLASS_NAMES)}
    while True:
        candidates = rng.uniform(*MEAN_RANGE, size=(CANDIDATES, len(CLASS_NAMES)))
        valid = np.ones(CANDIDATES, dtype=bool)
        for brighter, darker in ORDERINGS[sequence]:
            valid &= candidates[:, index[brighter]] >= margin(brighter, darker) * candidates[:, index[darker]]
        found = np.flatnonzero(valid)
        if len(found):
            return dict(zip(CLASS_NAMES, (float(v) for v in candidates[found[0]])))


def oedema_share(classes: np.ndarray, fade_voxels: float) -> np.ndarray:
    """Oedema's share of each voxel: 1 deep in the oedema label, 1/2 at its edge, 0 `fade_voxels` out.

    Oedema thins out into the white and grey matter around it; its label covers the voxels it
    dominates. The share changes linearly with the distance to that edge (inside: to the nearest
    healthy white or grey matter; outside: to the nearest oedema), and only there: never in CSF
    or the core.
    """
    oedema = classes == PHANTOM_CLASSES["ed"]
    if fade_voxels <= 0.0 or not oedema.any():
        return oedema.astype(np.float32)
    tissue = np.isin(classes, HEALTHY_TISSUE)
    inside = ndimage.distance_transform_edt(~tissue) - 0.5
    outside = 0.5 - ndimage.distance_transform_edt(~oedema)
    signed = np.where(oedema, inside, np.where(tissue, outside, -np.inf))
    return np.clip(0.5 + signed / (2.0 * fade_voxels), 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class OedemaSurroundings:
    """A class map's oedema, the healthy white and grey matter around it, and that tissue's local
    weight (a Gaussian average): the same on every sequence, so found once per class map."""

    oedema: np.ndarray
    white: np.ndarray
    tissue: np.ndarray
    weight: np.ndarray

    @classmethod
    def of(cls, classes: np.ndarray) -> OedemaSurroundings:
        tissue = np.isin(classes, HEALTHY_TISSUE).astype(np.float32)
        return cls(
            oedema=classes == PHANTOM_CLASSES["ed"],
            white=classes == PHANTOM_CLASSES["wm"],
            tissue=tissue,
            weight=ndimage.gaussian_filter(tissue, BENEATH_SIGMA_VOXELS),
        )


def fade_oedema(
    image: np.ndarray, around: OedemaSurroundings, share: np.ndarray, oedema_signal: np.ndarray
) -> np.ndarray:
    """`image` with each voxel's oedema `share` of `oedema_signal` over the tissue beneath.

    Beneath the oedema label the tissue is unknown; it is the local mean of the healthy white and
    grey matter around (a normalised Gaussian average), or the image's white matter far from any.
    """
    weight = around.weight
    average = ndimage.gaussian_filter(image * around.tissue, BENEATH_SIGMA_VOXELS) / np.maximum(weight, 1e-6)
    white = image[around.white]
    far = float(np.median(white)) if white.size else float(np.median(image))
    beneath = np.where(around.oedema, np.where(weight > 1e-3, average, far), image)
    return np.where(share > 0, share * oedema_signal + (1.0 - share) * beneath, image).astype(np.float32)


def synthesise(classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(4, ...) float32 images in canonical sequence order from a class map; 0 outside the brain."""
    brain = classes > 0
    images = np.zeros((len(SEQUENCES), *classes.shape), dtype=np.float32)
    sigma = rng.uniform(*PARTIAL_VOLUME_SIGMA_VOXELS)
    fade = rng.uniform(*OEDEMA_FADE_VOXELS)
    oedema = PHANTOM_CLASSES["ed"]
    # Oedema changes nothing further out than the fade, nor its guess of the tissue beneath.
    margin = int(np.ceil(fade + 3 * BENEATH_SIGMA_VOXELS)) + 1
    box = grown(bounding_box(classes == oedema), margin, classes.shape)
    share = oedema_share(classes[box], fade) if box is not None else None
    around = OedemaSurroundings.of(classes[box]) if box is not None else None
    for channel, sequence in enumerate(SEQUENCES):
        means = draw_means(rng, sequence)
        lookup = np.zeros(max(PHANTOM_CLASSES.values()) + 1, dtype=np.float32)
        strength = np.zeros_like(lookup)
        for name, value in PHANTOM_CLASSES.items():
            lookup[value] = means[name]
            strength[value] = rng.uniform(*TEXTURE_STRENGTH)
        noise = smooth_noise(rng, classes.shape, TEXTURE_COARSENESS)
        image = lookup[classes] * (1.0 + strength[classes] * noise)
        if box is not None:
            signal = lookup[oedema] * (1.0 + strength[oedema] * noise[box])
            image[box] = fade_oedema(image[box], around, share, signal)
        image = ndimage.gaussian_filter(image, sigma)
        images[channel] = np.where(brain, np.maximum(image, FLOOR), 0.0)
    return images


class SynthesiseSequencesd(Randomizable, MapTransform):
    """With probability `probability`, replace the raw sequences by images drawn from the class map.

    Of those samples, a share `tumours` first gets a tumour of random geometry in place of its own
    (`tumour_shapes.random_tumour`), and its label map is redrawn from the new class map. The
    class map key is dropped either way; otherwise the label map is untouched (it derives from the
    same class map, so images and labels agree voxel for voxel).
    """

    def __init__(
        self,
        raw_key: str,
        classes_key: str,
        probability: float,
        label_key: str = "label",
        labels: Optional[LabelConvention] = None,
        tumours: float = 0.0,
    ) -> None:
        super().__init__(keys=[classes_key])
        self.raw_key, self.classes_key, self.probability = raw_key, classes_key, probability
        self.label_key, self.labels, self.tumours = label_key, labels, tumours
        if tumours > 0 and labels is None:
            raise ValueError("random tumours need the label convention to redraw the label map in")

    def randomize(self, data: Any = None) -> None:
        self.apply = self.R.random_sample() < self.probability
        self.seed = int(self.R.randint(2**31))
        self.new_tumour = self.tumours > 0 and self.R.random_sample() < self.tumours

    def __call__(self, sample: Mapping[Hashable, Any]) -> Dict[Hashable, Any]:
        self.randomize()
        out = {k: v for k, v in sample.items() if k != self.classes_key}
        if self.apply:
            classes = np.asarray(sample[self.classes_key])[0].astype(np.intp)
            rng = np.random.default_rng(self.seed)
            if self.new_tumour:
                assert self.labels is not None
                classes = random_tumour(classes, rng)
                out[self.label_key] = labels_from_classes(classes, self.labels)[None]
            out[self.raw_key] = synthesise(classes, rng)
        return out
