"""Tumours the training phantoms never have: the out-of-distribution test set's tumour model.

Each case draws one kind, with shapes, sizes and sites outside the training ranges of `tumour`:
multifocal (3-5 small foci), lobulated (a cluster of overlapping spheres), elongated (one axis
three to five times the others), cystic (a round fluid cavity in a thin enhancing wall),
infiltrative (non-enhancing, very irregular, large), nodular (enhancement in nodules inside the
core, not a rim). Oedema is either minimal or massive, never the training's middle range, and
tumours sit closer to the cortex than the training's deep white-matter sites.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Tuple

import numpy as np
from scipy.special import expit

from mstkd.phantom.anatomy import Anatomy, sites_between
from mstkd.phantom.fields import smooth_noise
from mstkd.phantom.grid import Box, Grid, box_shape
from mstkd.phantom.tumour import Focus, Lesion, TumourPlan, grow_tumour, random_focus

KINDS: Tuple[str, ...] = ("multifocal", "lobulated", "elongated", "cystic", "infiltrative", "nodular")
# Sites: mostly white matter, but between these depths (mm) below the brain's surface; the
# training sites lie deeper than 18 mm.
SITE_WM_FRACTION = 0.5
SITE_DEPTH_MM = (8.0, 18.0)

OEDEMA_MINIMAL_MM = (1.0, 4.0)
OEDEMA_MASSIVE_MM = (36.0, 46.0)
MULTIFOCAL_FOCI = (3, 6)  # drawn with integers(): 3 to 5
MULTIFOCAL_RADIUS_MM = (5.0, 12.0)
MULTIFOCAL_SPREAD_MM = (20.0, 60.0)
LOBES = (5, 10)
LOBE_RADIUS_MM = (6.0, 12.0)
LOBE_OFFSET = (0.8, 1.5)  # lobe centres lie this many lobe radii from the cluster's centre
ELONGATION = (3.0, 5.0)
ELONGATED_RADIUS_MM = (7.0, 12.0)  # the short semi-axes; the long one is ELONGATION times more
CYST_RADIUS_MM = (12.0, 26.0)
CYST_WALL_MM = (2.0, 4.0)
INFILTRATIVE_RADIUS_MM = (14.0, 26.0)
INFILTRATIVE_IRREGULARITY = (0.3, 0.45)
NODULAR_RADIUS_MM = (12.0, 26.0)
NODULE_SHARE = (0.2, 0.45)  # share of the core's volume that enhances, in nodules
NODULE_SIGMA_VOXELS = 2.0
NODULE_EDGE = 0.3  # softness of the nodules' edge in noise units
IRREGULARITY = (0.05, 0.2)
MASS_EFFECT = (0.1, 0.5)
OEDEMA_GM_REACH = (0.3, 0.6)  # the training's oedema stops earlier in cortex


@dataclass(frozen=True)
class OODTumourPlan(TumourPlan):
    """A training-style plan (foci, rim, oedema), its kind (one of KINDS) and the nodules' draw."""

    nodule_share: float = 0.0
    nodule_seed: int = field(default=0)

    @property
    def cystic(self) -> bool:
        """The core is fluid (it reads as a cyst), not necrosis."""
        return self.kind == "cystic"


def ood_sites() -> np.ndarray:
    """Template positions (n, 3) of the OOD tumours' centres: shallower than the training sites."""
    return sites_between(SITE_DEPTH_MM, SITE_WM_FRACTION)


def _oedema(rng: np.random.Generator) -> float:
    return float(rng.uniform(*(OEDEMA_MINIMAL_MM if rng.random() < 0.5 else OEDEMA_MASSIVE_MM)))


def _scattered(rng: np.random.Generator, sites: np.ndarray, centre: np.ndarray, spread: float) -> np.ndarray:
    distance = np.linalg.norm(sites - centre, axis=1)
    near = np.flatnonzero((distance > 0.3 * spread) & (distance < spread))
    return sites[near[rng.integers(len(near))]] if len(near) else centre


def _foci(rng: np.random.Generator, kind: str, sites: np.ndarray, voxel_mm: float) -> Tuple[Focus, ...]:
    centre = sites[rng.integers(len(sites))]
    smallest = 3.0 * voxel_mm
    if kind == "multifocal":
        count = int(rng.integers(*MULTIFOCAL_FOCI))
        spread = rng.uniform(*MULTIFOCAL_SPREAD_MM)
        centres = [centre] + [_scattered(rng, sites, centre, spread) for _ in range(count - 1)]
        return tuple(
            random_focus(rng, c, max(rng.uniform(*MULTIFOCAL_RADIUS_MM), smallest), (0.8, 1.2))
            for c in centres
        )
    if kind == "lobulated":
        foci = []
        for _ in range(int(rng.integers(*LOBES))):
            radius = max(rng.uniform(*LOBE_RADIUS_MM), smallest)
            direction = rng.standard_normal(3)
            offset = direction / np.linalg.norm(direction) * radius * rng.uniform(*LOBE_OFFSET)
            foci.append(random_focus(rng, centre + offset, radius, (0.8, 1.2)))
        return tuple(foci)
    if kind == "elongated":
        radius = max(rng.uniform(*ELONGATED_RADIUS_MM), smallest)
        focus = random_focus(rng, centre, radius, (1.0, 1.0))
        axes = np.array([rng.uniform(*ELONGATION), 1.0, 1.0])
        return (replace(focus, semi_axes=rng.permutation(axes)),)
    radius = {"cystic": CYST_RADIUS_MM, "infiltrative": INFILTRATIVE_RADIUS_MM}.get(kind, NODULAR_RADIUS_MM)
    round_shape = (0.9, 1.1) if kind == "cystic" else (0.7, 1.3)
    return (random_focus(rng, centre, max(rng.uniform(*radius), smallest), round_shape),)


def plan_ood_tumour(rng: np.random.Generator, sites_mm: np.ndarray, voxel_mm: float) -> OODTumourPlan:
    """Draw one OOD tumour: its kind, foci and sub-regions, at candidate sites (n, 3)."""
    kind = KINDS[int(rng.integers(len(KINDS)))]
    foci = _foci(rng, kind, sites_mm, voxel_mm)
    irregularity = rng.uniform(*(INFILTRATIVE_IRREGULARITY if kind == "infiltrative" else IRREGULARITY))
    return OODTumourPlan(
        foci=foci,
        irregularity=float(irregularity),
        rim_mm=float(rng.uniform(*CYST_WALL_MM)) if kind == "cystic" else float(rng.uniform(2.0, 5.0)),
        enhancing=kind != "infiltrative",
        oedema_mm=_oedema(rng),
        oedema_gm_reach=float(rng.uniform(*OEDEMA_GM_REACH)),
        mass_effect=float(rng.uniform(*MASS_EFFECT)),
        kind=kind,
        nodule_share=float(rng.uniform(*NODULE_SHARE)) if kind == "nodular" else 0.0,
        nodule_seed=int(rng.integers(2**31)),
    )


def grow_ood_tumour(
    plan: TumourPlan, rng: np.random.Generator, grid: Grid, box: Box, anatomy: Anatomy
) -> Lesion:
    """The sub-regions of an OOD tumour; nodular tumours enhance in nodules instead of a rim."""
    lesion = grow_tumour(plan, rng, grid, box, anatomy)
    if not isinstance(plan, OODTumourPlan) or plan.kind != "nodular":
        return lesion
    core = lesion.ncr + lesion.et
    field = smooth_noise(np.random.default_rng(plan.nodule_seed), box_shape(box), NODULE_SIGMA_VOXELS)
    inside = core > 0.5
    threshold = np.quantile(field[inside], 1.0 - plan.nodule_share) if inside.any() else np.inf
    nodules = expit((field - threshold) / NODULE_EDGE).astype(np.float32)
    return replace(lesion, ncr=core * (1.0 - nodules), et=core * nodules)
