"""Public API: generate one synthetic BraTS-like case in memory, or write many in a BraTS layout.

Case `index` of seed `seed` depends on (seed, index) only: it draws from its own random streams,
so the first cases of a larger batch are the cases of a smaller one, byte for byte.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import SimpleITK as sitk

from mstkd.cases import BRAIN_MASK_FOLDER, HELD_OUT_MARKER, NATIVE_FOLDER, Case, class_map_path
from mstkd.conventions import DEFAULT_LABELS, SEGMENTATION, SEQUENCES, convert_labels, label_convention
from mstkd.errors import MSTKDError
from mstkd.files import check_replaceable, check_writable, missing_folders, remove_empty, write_text
from mstkd.imageio import PathLike, image_to_array, is_ours, sitk_path, write_image
from mstkd.phantom.anatomy import WORKERS, load_template, sample_anatomy
from mstkd.phantom.artefacts import random_brain_scale, random_deformation
from mstkd.phantom.generators import DEFAULT_GENERATOR, get_generator
from mstkd.phantom.grid import (
    BRATS_SIZE,
    Box,
    Grid,
    box_around,
    box_axes_mm,
    box_shape,
    brats_grid,
    intersect,
    sub_box,
)
from mstkd.phantom.head import grow_head, head_grid, head_signals, scan_with_head
from mstkd.phantom.layout import DEFAULT_LAYOUT, Layout, get_layout
from mstkd.phantom.native import acquire_native
from mstkd.phantom.preview import save_preview
from mstkd.phantom.tumour import TumourPlan, mass_effect, tumour_box
from mstkd.progress import progress

# One independent random stream per stage and per scan, so that changing one leaves the others
# alone, and the scans can run in parallel.
STREAMS = ("anatomy", "tumour", "contrast", "native") + SEQUENCES
# The head's stream is drawn apart from those, so that the rest of a case does not depend on it.
HEAD_STREAM = 1
# The block sampled around the brain leaves room for the warp and the head tilt.
CROP_MARGIN_MM = 8.0
# Coarse grids sample templates blurred to about their voxel size (Gaussian FWHM = voxel).
FWHM_PER_SIGMA = 2.355
PREVIEW_FOLDER = "previews"
# The mark of a phantom's images (see mstkd.imageio.write_image): a later run may replace them.
PHANTOM = "phantom"


@dataclass(frozen=True)
class PhantomCase:
    """One synthetic case: four sequences and labels on a BraTS-like grid, and optionally clinical grids.

    `images` are int16 scanner units, 0 outside the brain; `labels` (uint8) follow `convention`;
    `tissues` (uint8) is the normal anatomy under the tumour: 1 CSF, 2 GM, 3 WM; `classes` (uint8)
    is the class map the images were drawn from (PHANTOM_CLASSES: tissues and tumour compartments).
    With `native`, `native_images` holds each sequence on its own clinical grid, `native_labels` lies
    on the T1ce one, and `native_motions` maps each native grid's points to the BraTS grid's points
    (the patient's motion before that series).
    A case with a head (`with_skull`) has images that cover the whole field of view (scalp, skull,
    neck, noise in the air) on a grid grown to hold the head, and `brain_mask` (uint8) on that
    grid; `native_brain_mask` lies on the T1ce grid.
    """

    seed: int
    index: int
    images: Dict[str, sitk.Image]
    labels: sitk.Image
    tissues: sitk.Image
    classes: sitk.Image
    convention: str
    plan: TumourPlan
    native_images: Dict[str, sitk.Image] = field(default_factory=dict)
    native_labels: Optional[sitk.Image] = None
    native_motions: Dict[str, sitk.Euler3DTransform] = field(default_factory=dict)
    generator: str = DEFAULT_GENERATOR
    brain_mask: Optional[sitk.Image] = None
    native_brain_mask: Optional[sitk.Image] = None

    def array(self, name: str) -> np.ndarray:
        """A sequence, 'seg', 'tissues' or 'classes' as an (i, j, k) array."""
        if name == SEGMENTATION:
            return image_to_array(self.labels)
        if name in ("tissues", "classes"):
            return image_to_array(getattr(self, name))
        return image_to_array(self.images[name])


def _template_smoothing(voxel_mm: float) -> float:
    return round(float(np.sqrt(max(voxel_mm**2 - 1.0, 0.0)) / FWHM_PER_SIGMA), 2)


def generate_case(
    seed: int,
    index: int = 0,
    shape: Sequence[int] = BRATS_SIZE,
    convention: str = DEFAULT_LABELS,
    native: bool = False,
    generator: str = DEFAULT_GENERATOR,
    with_skull: bool = False,
) -> PhantomCase:
    """Generate case `index` of `seed` on the BraTS-like grid of `shape` (x, y, z); see `brats_grid`.

    Labels follow `convention`; with `native`, each sequence is also acquired on a clinical grid.
    `generator` names the tumour model, contrast table and acquisition (see `generators`);
    `with_skull` keeps the head around the brain (mstkd.phantom.head), on a grid grown to hold it
    (the head's own acquisition then replaces the generator's).
    """
    if seed < 0 or index < 0:
        raise MSTKDError(f"Seeds and case numbers are non-negative; got seed {seed}, case {index}.")
    stages = get_generator(generator)
    grid = head_grid(brats_grid(shape)) if with_skull else brats_grid(shape)
    labels_of = label_convention(convention)
    seeds = np.random.SeedSequence([seed, index]).spawn(len(STREAMS))
    rngs = dict(zip(STREAMS, (np.random.default_rng(s) for s in seeds)))
    template = load_template(_template_smoothing(grid.voxel_mm))

    scale = random_brain_scale(rngs["anatomy"])
    half = template.extent_mm * scale / 2 + CROP_MARGIN_MM
    crop = box_around(grid, grid.centre - half, grid.centre + half)
    deformation = random_deformation(rngs["anatomy"], box_shape(crop), scale)
    sites = deformation.to_subject(stages.sites(template), template.centre_mm, grid.centre)
    plan = stages.plan_tumour(rngs["tumour"], sites, grid.voxel_mm)

    axes = box_axes_mm(grid, crop)
    source = [axis - push for axis, push in zip(axes, mass_effect(plan, axes))]
    anatomy = sample_anatomy(template, deformation.to_template(source, template.centre_mm, grid.centre))
    box = intersect(tumour_box(plan, grid), crop)
    block = sub_box(crop, box)
    lesion = stages.grow_tumour(plan, rngs["tumour"], grid, box, anatomy.crop(block))

    contrast = stages.sample_contrast(rngs["contrast"])
    brain = _paste(grid, crop, anatomy.brain)
    if with_skull:
        head_rng = np.random.default_rng(np.random.SeedSequence([seed, index, HEAD_STREAM]))
        head = grow_head(head_rng, brain, grid.spacing)
        head_contrast = head_signals(head_rng, {s: contrast.signal[s]["csf"] for s in SEQUENCES})

    def scan(sequence: str) -> sitk.Image:
        signal = stages.compose(contrast, sequence, anatomy, lesion, block, plan)
        if with_skull:
            values = head_contrast[sequence]
            return grid.image(scan_with_head(rngs[sequence], sequence, signal, crop, head, values, brain))
        outside = contrast.signal[sequence]["csf"]
        scanned = stages.acquire(rngs[sequence], sequence, signal, anatomy.brain, outside)
        return grid.image(_paste(grid, crop, scanned))

    with ThreadPoolExecutor(WORKERS) as pool:
        images = dict(zip(SEQUENCES, pool.map(scan, SEQUENCES)))
    labels = np.zeros(box_shape(crop), dtype=np.uint8)
    labels[block] = lesion.labels(labels_of)
    tissues = anatomy.tissue_labels()
    classes = tissues.copy()
    classes[block] = lesion.classes(tissues[block], plan.enhancing)
    case = PhantomCase(
        seed=seed,
        index=index,
        images=images,
        labels=grid.image(_paste(grid, crop, labels)),
        tissues=grid.image(_paste(grid, crop, tissues)),
        classes=grid.image(_paste(grid, crop, classes)),
        convention=labels_of.name,
        plan=plan,
        generator=stages.name,
        brain_mask=grid.image(brain.astype(np.uint8)) if with_skull else None,
    )
    if not native:
        return case
    native_images, native_labels, motions = acquire_native(
        rngs["native"], images, case.labels, grid, strip=not with_skull
    )
    native_brain = None
    if case.brain_mask is not None:
        native_brain = sitk.Resample(
            case.brain_mask, native_labels, motions["t1ce"], sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8
        )
    return replace(
        case,
        native_images=native_images,
        native_labels=native_labels,
        native_motions=motions,
        native_brain_mask=native_brain,
    )


def _paste(grid: Grid, crop: Box, values: np.ndarray) -> np.ndarray:
    full = np.zeros(grid.shape, dtype=values.dtype)
    full[crop] = values
    return full


def write_case(
    case: PhantomCase,
    out_dir: PathLike,
    layout: str = DEFAULT_LAYOUT,
    overwrite: bool = False,
    class_maps: bool = False,
) -> Path:
    """Write a case as a folder of `layout` under `out_dir` (clinical grids in its native/); returns it.

    Files of an earlier phantom are replaced; any other file under one of the names is refused
    unless `overwrite`. A failure removes the files (and folders) of the case written so far.
    With `class_maps`, the class map goes to the folder's classes/ (see `cases.class_map_path`);
    a case of a held-out generator gets its marker (`cases.HELD_OUT_MARKER`).
    A case with a head gets its true brain mask in <case>/brainmask/ (and <case>/native/brainmask/).
    """
    chosen = get_layout(layout)
    folder = Path(out_dir) / chosen.case_id(case.index)
    files = _case_files(case, out_dir, chosen)
    if class_maps:
        files[class_map_path(Case(folder.name, {}, folder=folder))] = case.classes
    marker = folder / HELD_OUT_MARKER if get_generator(case.generator).held_out else None
    for path in files:  # the case's images (case_paths) and its side files: class map, brain masks
        check_replaceable(path, lambda p: is_ours(p, PHANTOM), overwrite, "phantom image")
    if marker is not None:
        check_replaceable(marker, _is_held_out_marker, overwrite, "held-out marker")
    created = missing_folders([*files, *([marker] if marker else [])])
    written: List[Path] = []
    try:
        for path, image in files.items():
            written.append(write_image(image, path, PHANTOM))
        if marker is not None:
            description = {
                "generator": case.generator,
                "seed": case.seed,
                "index": case.index,
                "tumour": case.plan.kind,
            }
            written.append(write_text(marker, json.dumps(description, indent=2) + "\n"))
    except BaseException:
        for path in written:
            path.unlink()
        remove_empty(created)
        raise
    return folder


def case_paths(
    index: int, out_dir: PathLike, layout: str = DEFAULT_LAYOUT, native: bool = False
) -> List[Path]:
    """The files `write_case` writes for case `index` (with its native/ grids when `native`)."""
    chosen = get_layout(layout)
    case_id = chosen.case_id(index)
    folder = Path(out_dir) / case_id
    names = [*SEQUENCES, SEGMENTATION]
    paths = [folder / chosen.file_name(case_id, name) for name in names]
    if native:
        paths += [folder / NATIVE_FOLDER / chosen.file_name(case_id, name) for name in names]
    return paths


def check_case_paths(index: int, out_dir: PathLike, layout: str, native: bool, overwrite: bool) -> None:
    """Refuse (MSTKDError) when a file of case `index` exists and is not a phantom's, unless `overwrite`."""
    for path in case_paths(index, out_dir, layout, native):
        check_replaceable(path, lambda p: is_ours(p, PHANTOM), overwrite, "phantom image")


def _case_files(case: PhantomCase, out_dir: PathLike, chosen: Layout) -> Dict[Path, sitk.Image]:
    images = [
        *(case.images[s] for s in SEQUENCES),
        _in_convention(case.labels, case.convention, chosen.labels),
    ]
    native = case.native_labels is not None
    if native:
        labels = _in_convention(case.native_labels, case.convention, chosen.labels)
        images += [*(case.native_images[s] for s in SEQUENCES), labels]
    files = dict(zip(case_paths(case.index, out_dir, chosen.name, native), images))
    folder = Path(out_dir) / chosen.case_id(case.index)
    for where, mask in ((folder, case.brain_mask), (folder / NATIVE_FOLDER, case.native_brain_mask)):
        if mask is not None:
            files[brain_mask_path(where, chosen.case_id(case.index))] = mask
    return files


def brain_mask_path(folder: PathLike, case_id: str) -> Path:
    """Where a case folder (or its native/ folder) keeps the true brain mask of a phantom with a head."""
    return Path(folder) / BRAIN_MASK_FOLDER / f"{case_id}_brainmask.nii.gz"


def _is_held_out_marker(path: Path) -> bool:
    """True for the JSON marker a held-out generator's case gets (its generator, seed and index)."""
    try:
        description = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(description, dict) and {"generator", "seed", "index"} <= set(description)


def _in_convention(labels: sitk.Image, source: str, target: str) -> sitk.Image:
    if source == target:
        return labels
    converted = sitk.GetImageFromArray(convert_labels(sitk.GetArrayFromImage(labels), source, target))
    converted.CopyInformation(labels)
    return converted


def write_phantoms(
    out_dir: PathLike,
    cases: int,
    seed: int = 0,
    layout: str = DEFAULT_LAYOUT,
    shape: Sequence[int] = BRATS_SIZE,
    native: bool = False,
    preview: bool = False,
    show_progress: bool = True,
    overwrite: bool = False,
    class_maps: bool = False,
    generator: str = DEFAULT_GENERATOR,
    with_skull: bool = False,
) -> List[Path]:
    """Generate and write cases 0..cases-1 of `seed`; returns their folders.

    Previews go to `out_dir`/previews/<case>.png, outside the case folders. Files of an earlier
    phantom are replaced; any other file under one of the names is refused unless `overwrite`.
    `class_maps` writes each case's class map too; `generator` names the kind of phantom (see
    `generators`).
    """
    if cases < 1:
        raise MSTKDError(f"Ask for at least one case (--cases 1 or more); got {cases}.")
    if seed < 0:
        raise MSTKDError(f"The seed must be a whole number >= 0; got {seed}.")
    chosen = get_layout(layout)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise MSTKDError(f"{out_dir} is a file; give a folder to write the cases into.")
    indices = range(cases)
    # Every name is checked before the first case is generated: a refusal costs no time.
    sitk_path(out_dir)
    for index in indices:
        check_case_paths(index, out_dir, chosen.name, native, overwrite)
    check_writable(out_dir)
    folders = []
    for index in progress(indices, "phantoms") if show_progress else indices:
        case = generate_case(seed, index, shape, chosen.labels, native, generator, with_skull)
        folders.append(write_case(case, out_dir, chosen.name, overwrite, class_maps))
        if preview:
            save_preview(case, out_dir / PREVIEW_FOLDER / f"{chosen.case_id(index)}.png")
    return folders
