"""A glioma: irregular core (necrosis inside an enhancing rim), oedema along white matter, mass effect.

The core is a distorted ellipsoid: an ellipsoidal distance to its surface plus smooth noise, thresholded.
Necrosis is the inner part of the core; the enhancing rim of varied thickness is the rest of it, and
is absent in non-enhancing tumours (the whole core is then NCR/NET). Oedema spreads from the core
further through white matter than through cortex and never into CSF. Regions are soft weights (a
voxel may be partly tumour) so the images get partial volume; labels are the dominant region.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation
from scipy.special import expit

from mstkd.conventions import PHANTOM_CLASSES, LabelConvention
from mstkd.phantom.anatomy import Anatomy
from mstkd.phantom.fields import smooth_noise
from mstkd.phantom.grid import Box, Grid, box_around, box_axes_mm, box_shape

# Ranges of the per-case random choices (millimetres unless said otherwise).
CORE_RADIUS_MM = (8.0, 28.0)
# On coarse grids a tumour is at least this many voxels across its radius, or it would be a blur.
MIN_RADIUS_VOXELS = 3.0
SEMI_AXIS_RANGE = (0.7, 1.3)
IRREGULARITY = (0.08, 0.25)  # noise amplitude on the core's surface, relative to its radius
RIM_MM = (2.0, 8.0)
# A rim thinner than this many voxels would be all partial volume: neither bright nor labelled.
MIN_RIM_VOXELS = 2.0
RIM_VARIATION = 0.5  # relative thickness change along the rim
NON_ENHANCING_PROBABILITY = 0.15
OEDEMA_MM = (6.0, 35.0)
# Oedema follows white matter: it reaches its full distance through WM and only this fraction
# of it into cortex, and it must connect to the core (it does not jump across a sulcus).
OEDEMA_GM_REACH = (0.05, 0.3)
OEDEMA_IRREGULARITY = 0.25
MASS_EFFECT = (0.2, 0.6)  # fraction of the tumour's radius by which nearby anatomy is pushed
SECOND_FOCUS_PROBABILITY = 0.2
SECOND_FOCUS_DISTANCE_MM = (18.0, 45.0)
SECOND_FOCUS_RADIUS = (0.35, 0.7)  # relative to the first focus
# Soft edges are about this many voxels wide (oedema fades out more gradually than tumour).
EDGE_VOXELS = 0.3
OEDEMA_EDGE_VOXELS = 1.5
# Noise blobs are a third of the radius across.
BLOB_FRACTION = 1.0 / 3.0
TEXTURE_SIGMA_VOXELS = 1.5
BOX_MARGIN_MM = 4.0
# Smooth noise of unit deviation rarely exceeds this: the box allows for it.
NOISE_REACH = 3.0


@dataclass(frozen=True)
class Focus:
    """One tumour focus: centre (x, y, z) in the phantom's space, radius, shape and orientation."""

    centre_mm: np.ndarray
    radius_mm: float
    semi_axes: np.ndarray
    rotation: np.ndarray


@dataclass(frozen=True)
class TumourPlan:
    """The random choices that define one case's tumour."""

    foci: Tuple[Focus, ...]
    irregularity: float
    rim_mm: float
    enhancing: bool
    oedema_mm: float
    oedema_gm_reach: float
    mass_effect: float
    kind: str = "glioma"  # the tumour model's name for what it drew

    @property
    def radius_mm(self) -> float:
        """Radius of the main focus."""
        return self.foci[0].radius_mm


@dataclass(frozen=True)
class Lesion:
    """Soft weights of the sub-regions on a block of the grid, and the tumour's texture there."""

    ncr: np.ndarray
    et: np.ndarray
    ed: np.ndarray
    texture: np.ndarray

    def dominant(self) -> Dict[str, np.ndarray]:
        """Where each sub-region (ncr, et, ed) outweighs the others and normal tissue, on the block."""
        core = self.ncr + self.et
        normal = 1.0 - core - self.ed
        is_core = (core > normal) & (core > self.ed)
        et = is_core & (self.et > self.ncr)
        return {"ncr": is_core & ~et, "et": et, "ed": (self.ed > normal) & (self.ed >= core)}

    def labels(self, convention: LabelConvention) -> np.ndarray:
        """The dominant region of each voxel of the block, coded in `convention`."""
        labels = np.zeros(self.ncr.shape, dtype=np.uint8)
        for name, where in self.dominant().items():
            labels[where] = convention.values[name]
        return labels

    def classes(self, tissues: np.ndarray, enhancing: bool) -> np.ndarray:
        """The block's class map (PHANTOM_CLASSES): the tumour's compartments over the `tissues` beneath."""
        classes = tissues.copy()
        core = "ncr" if enhancing else "net"
        for name, where in self.dominant().items():
            classes[where] = PHANTOM_CLASSES[core if name == "ncr" else name]
        return classes


def random_focus(
    rng: np.random.Generator,
    centre_mm: np.ndarray,
    radius_mm: float,
    semi_axis_range: Tuple[float, float] = SEMI_AXIS_RANGE,
) -> Focus:
    """A focus at `centre_mm` with random semi-axes (relative to `radius_mm`) and orientation."""
    return Focus(
        centre_mm=np.asarray(centre_mm, dtype=float),
        radius_mm=float(radius_mm),
        semi_axes=rng.uniform(*semi_axis_range, size=3),
        rotation=Rotation.random(random_state=rng).as_matrix(),
    )


def plan_tumour(rng: np.random.Generator, sites_mm: np.ndarray, voxel_mm: float) -> TumourPlan:
    """Draw a tumour: one or two foci at candidate sites (n, 3), sizes, rim, oedema, mass effect."""
    centre = sites_mm[rng.integers(len(sites_mm))]
    radius = max(rng.uniform(*CORE_RADIUS_MM), MIN_RADIUS_VOXELS * voxel_mm)
    foci = [random_focus(rng, centre, radius)]
    if rng.random() < SECOND_FOCUS_PROBABILITY:
        distance = np.linalg.norm(sites_mm - centre, axis=1)
        near = np.flatnonzero(
            (distance > SECOND_FOCUS_DISTANCE_MM[0]) & (distance < SECOND_FOCUS_DISTANCE_MM[1])
        )
        if len(near):
            second = sites_mm[near[rng.integers(len(near))]]
            foci.append(random_focus(rng, second, radius * rng.uniform(*SECOND_FOCUS_RADIUS)))
    return TumourPlan(
        foci=tuple(foci),
        irregularity=rng.uniform(*IRREGULARITY),
        rim_mm=rng.uniform(*RIM_MM),
        enhancing=bool(rng.random() >= NON_ENHANCING_PROBABILITY),
        oedema_mm=rng.uniform(*OEDEMA_MM),
        oedema_gm_reach=rng.uniform(*OEDEMA_GM_REACH),
        mass_effect=rng.uniform(*MASS_EFFECT),
    )


def mass_effect(plan: TumourPlan, axes_mm: Tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Backward displacement (3, z, y, x) in mm: anatomy at p comes from p minus this.

    Radial push that peaks about the tumour's edge and fades a few radii away; its strength is
    below 1 so the map stays one-to-one (no folding).
    """
    x, y, z = axes_mm
    displacement = np.zeros((3,) + np.broadcast_shapes(x.shape, y.shape, z.shape), dtype=np.float32)
    for focus in plan.foci:
        reach = focus.radius_mm + 0.5 * plan.oedema_mm
        offsets = [axis - np.float32(c) for axis, c in zip((x, y, z), focus.centre_mm)]
        fall_off = np.exp(-(offsets[0] ** 2 + offsets[1] ** 2 + offsets[2] ** 2) / np.float32(reach**2))
        push = np.float32(plan.mass_effect) * fall_off
        for component, offset in enumerate(offsets):
            displacement[component] += push * offset
    return displacement


def tumour_box(plan: TumourPlan, grid: Grid) -> Box:
    """The block of the grid that holds the tumour and its oedema (noise up to NOISE_REACH sigmas)."""
    surface_mm = plan.oedema_mm * (1 + NOISE_REACH * OEDEMA_IRREGULARITY)
    reach = np.array(
        [
            f.semi_axes.max() * (f.radius_mm * (1 + NOISE_REACH * plan.irregularity) + surface_mm)
            for f in plan.foci
        ]
    )
    reach += BOX_MARGIN_MM
    centres = np.array([f.centre_mm for f in plan.foci])
    return box_around(grid, (centres - reach[:, None]).min(axis=0), (centres + reach[:, None]).max(axis=0))


def _core_surface_mm(
    plan: TumourPlan, axes_mm: Tuple[np.ndarray, np.ndarray, np.ndarray]
) -> Tuple[np.ndarray, np.ndarray]:
    """Roughly the signed distance (mm) to the nearest focus's irregular surface: negative inside.

    Each focus is an ellipsoid whose surface is pushed in and out by smooth noise in proportion to
    its radius; in millimetres, the rim has the same thickness around every focus.
    """
    surface = radius = None
    for focus in plan.foci:
        offsets = [axis - np.float32(c) for axis, c in zip(axes_mm, focus.centre_mm)]
        squared = 0.0
        for k in range(3):
            local = sum(np.float32(focus.rotation[j, k]) * offsets[j] for j in range(3))
            squared = squared + (local / np.float32(focus.semi_axes[k] * focus.radius_mm)) ** 2
        distance = (np.sqrt(squared) - 1.0) * np.float32(focus.radius_mm)
        if surface is None:
            surface, radius = distance, np.full_like(distance, focus.radius_mm)
        else:
            nearer = distance < surface
            surface, radius = np.where(nearer, distance, surface), np.where(nearer, focus.radius_mm, radius)
    return surface, radius


def _connected_to(seed: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The parts of `mask` connected to `seed`."""
    components, _ = ndimage.label(mask)
    touching = np.unique(components[seed & mask])
    return np.isin(components, touching[touching > 0])


def grow_tumour(plan: TumourPlan, rng: np.random.Generator, grid: Grid, box: Box, anatomy: Anatomy) -> Lesion:
    """The sub-regions' soft weights on `box`, given the (displaced) anatomy there."""
    shape, voxel = box_shape(box), grid.voxel_mm
    axes_mm = box_axes_mm(grid, box)
    blob = max(plan.radius_mm * BLOB_FRACTION / voxel, 1.0)
    surface, radius = _core_surface_mm(plan, axes_mm)
    surface += plan.irregularity * radius * smooth_noise(rng, shape, blob)
    edge = EDGE_VOXELS * voxel
    brain, wm, csf = anatomy.brain, anatomy.wm, anatomy.csf
    core = expit(-surface / edge).astype(np.float32) * (1.0 - csf) * brain
    # One noise field varies both the rim (at the core's surface) and the oedema (further out).
    variation = smooth_noise(rng, shape, blob)
    rim = max(plan.rim_mm, MIN_RIM_VOXELS * voxel) * (1.0 + RIM_VARIATION * variation)
    necrotic = expit((-rim - surface) / edge).astype(np.float32) if plan.enhancing else np.float32(1.0)

    # The surface field is close to the distance from the core, and far cheaper than a transform.
    allowed_mm = plan.oedema_mm * (plan.oedema_gm_reach + (1.0 - plan.oedema_gm_reach) * wm)
    reach = np.maximum(surface, 0.0) / np.maximum(allowed_mm, edge) + OEDEMA_IRREGULARITY * variation
    fading = OEDEMA_EDGE_VOXELS * voxel
    oedema = expit((1.0 - reach) * (plan.oedema_mm / fading)).astype(np.float32) * (1.0 - csf) * (1.0 - core)
    oedema *= brain & _connected_to(core > 0.5, (oedema + core) > 0.5)
    return Lesion(
        ncr=core * necrotic,
        et=core * (1.0 - necrotic),
        ed=oedema,
        texture=smooth_noise(rng, shape, TEXTURE_SIGMA_VOXELS),
    )
