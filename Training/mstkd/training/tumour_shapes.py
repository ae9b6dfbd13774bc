"""Random tumour geometry painted into a phantom's class map, for domain-randomised training.

The phantom generator grows one family of tumours. A network that sees only those learns their
shapes along with the tumour. Here a synthesised sample's tumour can be replaced by one drawn from
wide, simple rules instead: one to three foci, each a blob whose boundary is a level set of an
anisotropic distance plus smooth noise (round and lobulated to ragged); an enhancing rim of random
thickness, whole, broken or absent, or solid enhancement; a necrotic or non-enhancing core; oedema
reaching a random distance through white and grey matter along its own noisy boundary. The old
tumour becomes white matter. Images are then drawn from the new map (`training.synthesis`), so
images and labels agree voxel for voxel.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
import torch

from mstkd.conventions import CLASS_SUBREGIONS, PHANTOM_CLASSES, LabelConvention

TUMOUR_CLASSES = tuple(PHANTOM_CLASSES[name] for name in ("ncr", "net", "et", "ed"))
FOCI_WEIGHTS = (0.6, 0.25, 0.15)  # one, two or three foci
RADIUS_VOXELS = (3.0, 13.0)  # of the first focus; later ones are smaller
ANISOTROPY = (0.6, 1.5)  # per-axis stretch of a focus
RAGGEDNESS = (0.0, 0.6)  # amplitude of the noise added to a focus's normalised distance
RIM_THICKNESS = (0.12, 0.5)  # as a fraction of the focus's normalised radius
OEDEMA_REACH = (0.0, 2.5)  # beyond the core, in normalised radii
OEDEMA_RAGGEDNESS = (0.2, 1.2)
NOISE_COARSENESS = (3.0, 10.0)  # voxels per coarse noise cell
# How the core is filled: P(rim around necrosis), P(rim around non-enhancing tumour),
# P(solid enhancement), P(no enhancement); a rim is broken with P(BROKEN_RIM).
CORE_KINDS = ("necrotic", "non_enhancing", "solid", "non_enhancing_only")
CORE_WEIGHTS = (0.5, 0.15, 0.15, 0.2)
BROKEN_RIM = 0.3


def smooth_noise(
    rng: np.random.Generator, shape: Tuple[int, ...], cells: Tuple[float, float] = NOISE_COARSENESS
) -> np.ndarray:
    """Unit-variance noise drawn on a coarse grid (cells of a random size in voxels) and interpolated."""
    cell = rng.uniform(*cells)
    coarse = [max(2, int(np.ceil(n / cell))) for n in shape]
    noise = torch.from_numpy(rng.standard_normal(coarse, dtype=np.float32))[None, None]
    field = torch.nn.functional.interpolate(noise, size=tuple(shape), mode="trilinear", align_corners=False)
    field = field[0, 0].numpy()
    return field / max(float(field.std()), 1e-6)


def _normalised_distance(
    rng: np.random.Generator, shape: Tuple[int, ...], centre, radius: float
) -> np.ndarray:
    """Distance to `centre` in units of `radius`, each axis stretched at random."""
    stretch = rng.uniform(*ANISOTROPY, size=3)
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    squared = sum(((g - c) / (radius * s)) ** 2 for g, c, s in zip(grids, centre, stretch))
    return np.sqrt(squared).astype(np.float32)


def _centres(rng: np.random.Generator, classes: np.ndarray, count: int, radius: float) -> list:
    """A first centre in white or grey matter, the others within a few radii of it, inside the brain."""
    tissue = np.argwhere(np.isin(classes, (PHANTOM_CLASSES["wm"], PHANTOM_CLASSES["gm"])))
    if not len(tissue):
        tissue = np.argwhere(classes > 0)
    first = tissue[rng.integers(len(tissue))]
    centres = [first]
    brain = np.argwhere(classes > 0)
    near = brain[np.linalg.norm(brain - first, axis=1) < 4 * radius]
    for _ in range(count - 1):
        centres.append(near[rng.integers(len(near))])
    return centres


def random_tumour(classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A copy of the class map whose tumour is replaced by one of random geometry (see the module)."""
    out = classes.copy()
    out[np.isin(out, TUMOUR_CLASSES)] = PHANTOM_CLASSES["wm"]
    brain = out > 0
    count = int(rng.choice(len(FOCI_WEIGHTS), p=FOCI_WEIGHTS)) + 1
    radius = rng.uniform(*RADIUS_VOXELS)
    shape = out.shape
    core_level = np.full(shape, np.inf, dtype=np.float32)  # < 1 inside a focus, 1 at its edge
    for index, centre in enumerate(_centres(rng, out, count, radius)):
        focus_radius = radius if index == 0 else radius * rng.uniform(0.3, 0.8)
        distance = _normalised_distance(rng, shape, centre, focus_radius)
        level = distance + rng.uniform(*RAGGEDNESS) * smooth_noise(rng, shape) * np.minimum(distance, 1.5)
        core_level = np.minimum(core_level, level)
    oedema_level = core_level + rng.uniform(*OEDEMA_RAGGEDNESS) * smooth_noise(rng, shape) * 0.5
    oedema = brain & (oedema_level < 1.0 + rng.uniform(*OEDEMA_REACH)) & (out != PHANTOM_CLASSES["csf"])
    core = brain & (core_level < 1.0)
    out[oedema] = PHANTOM_CLASSES["ed"]
    out[core] = _fill_core(rng, core, core_level, shape)
    return out


def _fill_core(rng: np.random.Generator, core: np.ndarray, level: np.ndarray, shape) -> np.ndarray:
    """The classes of the core's voxels: an enhancing rim (whole or broken) around a filling, or one class."""
    kind = CORE_KINDS[int(rng.choice(len(CORE_KINDS), p=CORE_WEIGHTS))]
    if kind == "solid":
        return np.uint8(PHANTOM_CLASSES["et"])
    if kind == "non_enhancing_only":
        return np.uint8(PHANTOM_CLASSES["net"])
    rim = level > 1.0 - rng.uniform(*RIM_THICKNESS)
    if rng.random() < BROKEN_RIM:
        rim &= smooth_noise(rng, shape) > rng.uniform(-0.5, 0.5)
    filling = PHANTOM_CLASSES["ncr" if kind == "necrotic" else "net"]
    return np.where(rim, PHANTOM_CLASSES["et"], filling).astype(np.uint8)[core]


def labels_from_classes(classes: np.ndarray, convention: LabelConvention) -> np.ndarray:
    """The label map of a class map, coded in `convention` (background 0)."""
    labels = np.zeros(classes.shape, dtype=np.uint8)
    for name, subregion in CLASS_SUBREGIONS.items():
        labels[classes == PHANTOM_CLASSES[name]] = convention.values[subregion]
    return labels
