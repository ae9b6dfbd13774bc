"""Normal anatomy from the MNI152 2009a templates that nilearn ships: brain mask and tissue classes.

nilearn's T1 template is already brain-extracted (non-zero exactly on the brain: one component,
no holes), so the brain mask is T1 > 0; GM and WM come from its probability maps and CSF
(sulci, cisterns, ventricles) is what the brain holds besides them. A phantom samples these
maps through a per-case backward map (placement, deformation, mass effect) onto its own grid.
"""

from __future__ import annotations

import importlib.util
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from mstkd.conventions import PHANTOM_CLASSES
from mstkd.errors import MSTKDError
from mstkd.phantom.grid import Box

TEMPLATE_FILES: Dict[str, str] = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
# Label values of the tissue map a phantom carries alongside its images (0 is background).
TISSUE_LABELS: Dict[str, int] = {name: PHANTOM_CLASSES[name] for name in ("csf", "gm", "wm")}

# Gliomas grow in the cerebral white matter: sites must be almost pure WM, this deep inside the
# brain, and above the tentorium (MNI z in mm; the cerebellum and brainstem lie lower and behind).
SITE_WM_FRACTION = 0.9
SITE_DEPTH_MM = 18.0
SITE_MIN_Z_MM = -20.0
CEREBELLUM_TOP_Z_MM = 0.0
CEREBELLUM_FRONT_Y_MM = -40.0
SITE_SAMPLING_MM = 2.0

# The templates' CSF fraction (what the brain holds besides GM and WM) never quite reaches 1 in the
# ventricles and is rarely quite 0 in tissue; it is stretched so that these values become 0 and 1.
CSF_FLOOR = 0.1
CSF_FULL = 0.85

# A voxel is brain when more than half of it is; GM and WM are looked up there only.
BRAIN_THRESHOLD = 0.5
# The brain is first looked for on voxels about this far apart, in the brain grown by the margin.
NEAR_BRAIN_MM = 4.0
NEAR_BRAIN_MARGIN_VOXELS = 4
WORKERS = max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class Template:
    """The template's maps as (z, y, x) float32 arrays, with its geometry and tumour sites."""

    brain: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    near_brain: np.ndarray  # the brain grown by a margin, for finding it cheaply
    index_from_mm: np.ndarray  # (3, 4): physical (x, y, z, 1) -> array index (z, y, x)
    centre_mm: np.ndarray  # centre of the brain's bounding box, physical (x, y, z)
    extent_mm: np.ndarray  # size of the brain's bounding box, (x, y, z)
    tumour_sites_mm: np.ndarray  # (n, 3) physical (x, y, z) of deep cerebral white matter


@dataclass(frozen=True)
class Anatomy:
    """Tissue fractions on a block of a phantom's grid; they sum to 1 inside the brain, 0 outside."""

    brain: np.ndarray
    csf: np.ndarray
    gm: np.ndarray
    wm: np.ndarray

    def crop(self, box: Box) -> Anatomy:
        """The same maps on a block (given relative to the arrays) of this one."""
        return Anatomy(*(getattr(self, name)[box] for name in ("brain", "csf", "gm", "wm")))

    def tissue_labels(self) -> np.ndarray:
        """The dominant tissue of each voxel as TISSUE_LABELS (uint8, 0 outside the brain)."""
        labels = np.full(self.brain.shape, TISSUE_LABELS["csf"], dtype=np.uint8)
        labels[(self.gm > self.csf) & (self.gm >= self.wm)] = TISSUE_LABELS["gm"]
        labels[(self.wm > self.csf) & (self.wm > self.gm)] = TISSUE_LABELS["wm"]
        labels[~self.brain] = 0
        return labels


def template_folder() -> Path:
    """The folder inside the installed nilearn package that holds the MNI152 templates."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise MSTKDError("Phantoms need the MNI152 templates of nilearn: pip install nilearn")
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    missing = [name for name in TEMPLATE_FILES.values() if not (folder / name).is_file()]
    if missing:
        raise MSTKDError(f"nilearn in {folder.parent.parent} lacks {', '.join(missing)}; reinstall nilearn.")
    return folder


@lru_cache(maxsize=1)
def _read_templates() -> Tuple[Dict[str, np.ndarray], np.ndarray]:
    folder = template_folder()
    images = {name: sitk.ReadImage(str(folder / file)) for name, file in TEMPLATE_FILES.items()}
    arrays = {name: sitk.GetArrayFromImage(image).astype(np.float32) for name, image in images.items()}
    t1 = images["t1"]
    direction = np.asarray(t1.GetDirection()).reshape(3, 3)
    index_xyz = np.diag(1.0 / np.asarray(t1.GetSpacing())) @ direction.T
    offset = -index_xyz @ np.asarray(t1.GetOrigin())
    index_from_mm = np.concatenate([index_xyz, offset[:, None]], axis=1)[::-1].copy()
    return arrays, index_from_mm


def _mm_from_index(index_from_mm: np.ndarray, index_zyx: np.ndarray) -> np.ndarray:
    """Physical (x, y, z) of (n, 3) array indices (z, y, x)."""
    matrix, offset = index_from_mm[:, :3], index_from_mm[:, 3]
    return (index_zyx - offset) @ np.linalg.inv(matrix).T


def tumour_sites(
    brain: np.ndarray,
    wm: np.ndarray,
    index_from_mm: np.ndarray,
    depth_mm: Tuple[float, float] = (SITE_DEPTH_MM, np.inf),
    wm_fraction: float = SITE_WM_FRACTION,
) -> np.ndarray:
    """Physical (x, y, z) of supratentorial voxels this deep (mm) inside the brain and this much WM."""
    step = int(SITE_SAMPLING_MM)
    coarse = brain[::step, ::step, ::step] > BRAIN_THRESHOLD
    depth = ndimage.distance_transform_edt(coarse, sampling=SITE_SAMPLING_MM)
    chosen = (depth > depth_mm[0]) & (depth < depth_mm[1]) & (wm[::step, ::step, ::step] > wm_fraction)
    sites = _mm_from_index(index_from_mm, np.argwhere(chosen) * step)
    # LPS y points backwards, so "behind y = -40 mm (RAS)" is y_lps > 40.
    _, y, z = sites.T
    infratentorial = (z < CEREBELLUM_TOP_Z_MM) & (y > -CEREBELLUM_FRONT_Y_MM)
    return sites[(z > SITE_MIN_Z_MM) & ~infratentorial]


@lru_cache(maxsize=8)
def sites_between(depth_mm: Tuple[float, float], wm_fraction: float) -> np.ndarray:
    """Tumour sites (n, 3) of another rule than the default: depth range (mm) and WM fraction."""
    template = load_template()
    return tumour_sites(template.brain, template.wm, template.index_from_mm, depth_mm, wm_fraction)


@lru_cache(maxsize=4)
def load_template(smoothing_mm: float = 0.0) -> Template:
    """The templates, blurred by `smoothing_mm` (Gaussian sigma) so coarse grids sample them unaliased."""
    arrays, index_from_mm = _read_templates()
    brain = (arrays["t1"] > 0).astype(np.float32)
    gm = np.minimum(arrays["gm"] / 255.0, 1.0) * brain
    wm = np.minimum(arrays["wm"] / 255.0, 1.0 - gm) * brain
    csf = np.clip((brain - gm - wm - CSF_FLOOR) / (CSF_FULL - CSF_FLOOR), 0.0, 1.0) * brain
    tissue = np.maximum(gm + wm, 1e-6)
    gm, wm = (m * (brain - csf) / tissue for m in (gm, wm))
    where = np.nonzero(brain)
    corners = _mm_from_index(
        index_from_mm, np.array([[a.min() for a in where], [a.max() for a in where]], dtype=float)
    )
    sites = tumour_sites(brain, wm, index_from_mm)
    if smoothing_mm > 0:
        brain, gm, wm = (ndimage.gaussian_filter(m, smoothing_mm) for m in (brain, gm, wm))
    near_brain = ndimage.maximum_filter(brain, size=2 * NEAR_BRAIN_MARGIN_VOXELS + 1)
    return Template(
        brain=brain,
        near_brain=near_brain,
        gm=gm.astype(np.float32),
        wm=wm.astype(np.float32),
        index_from_mm=index_from_mm,
        centre_mm=corners.mean(axis=0),
        extent_mm=np.abs(corners[1] - corners[0]) + 1.0,
        tumour_sites_mm=sites,
    )


def _interpolate(volume: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Trilinear samples of `volume` at (3, n) array indices, in parallel (scipy frees the GIL here)."""
    chunks = np.array_split(points, WORKERS, axis=1)
    with ThreadPoolExecutor(WORKERS) as pool:
        parts = pool.map(
            lambda chunk: ndimage.map_coordinates(volume, chunk, order=1, prefilter=False, output=np.float32),
            chunks,
        )
        return np.concatenate(list(parts))


def _near_brain(template: Template, index: np.ndarray) -> np.ndarray:
    """Voxels whose template position may be brain, found on every few voxels only (cheap)."""
    voxel_in_template = float(np.linalg.norm(index[:, 1, 1, 1] - index[:, 0, 0, 0])) / np.sqrt(3)
    step = max(1, int(NEAR_BRAIN_MM / voxel_in_template))
    coarse = index[:, ::step, ::step, ::step]
    found = _interpolate(template.near_brain, coarse.reshape(3, -1)).reshape(coarse.shape[1:]) > 0
    found = ndimage.binary_dilation(found, structure=np.ones((3, 3, 3), dtype=bool))
    near = found.repeat(step, 0).repeat(step, 1).repeat(step, 2)
    return near[tuple(slice(0, n) for n in index.shape[1:])]


def sample_anatomy(template: Template, template_mm: np.ndarray) -> Anatomy:
    """Tissue fractions at template positions (3, z, y, x) given in millimetres (x, y, z)."""
    matrix, offset = template.index_from_mm[:, :3].astype(np.float32), template.index_from_mm[:, 3]
    index = np.einsum("ij,j...->i...", matrix, template_mm) + offset.astype(np.float32)[:, None, None, None]
    near = _near_brain(template, index)
    brain = np.zeros(index.shape[1:], dtype=np.float32)
    brain[near] = _interpolate(template.brain, index[:, near])
    mask = brain > BRAIN_THRESHOLD
    points = index[:, mask]
    # Fractions of the brain part of a boundary voxel, so the mask's edge is not darkened.
    inverse = 1.0 / brain[mask]
    gm, wm = np.zeros_like(brain), np.zeros_like(brain)
    gm[mask] = np.clip(_interpolate(template.gm, points) * inverse, 0.0, 1.0)
    wm[mask] = np.clip(_interpolate(template.wm, points) * inverse, 0.0, 1.0 - gm[mask])
    csf = np.where(mask, 1.0 - gm - wm, 0.0).astype(np.float32)
    return Anatomy(brain=mask, csf=csf, gm=gm, wm=wm)
