"""Public API: prepare a clinical exam for the model, and carry the model's labels back exactly.

prepare_exam checks each sequence, picks the reference, extracts the brain when asked (on one
sequence; mstkd.preprocess.brain_extraction), registers the others to the reference (only when
their grids differ), resamples everything onto the model grid (identity direction, the model's
spacing, covering the reference), zeroes what lies outside the extracted brain (its mask carried
through the registration) and z-scores from the present sequences. The model grid lives
in the reference's physical space, so labels_to_reference is a nearest-neighbour resampling
with the identity transform, onto the reference's own grid, voxel for voxel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from mstkd.bias_field import NONE, correct_bias
from mstkd.conventions import SEQUENCES, SequenceMap, Subset, sequence_map
from mstkd.imageio import array_to_image, describe_grid, image_to_array, same_grid
from mstkd.intensity import ZSCORE, brain_mask, normalise_sequences
from mstkd.preprocess.brain_extraction import BrainExtraction
from mstkd.preprocess.grid import check_spacing, describe_spacing, model_grid, resample
from mstkd.preprocess.preflight import preflight
from mstkd.preprocess.reference import choose_reference
from mstkd.preprocess.registration import Registration, register_rigid

Report = Callable[[str, float], None]
Extract = Callable[[SequenceMap[sitk.Image]], BrainExtraction]

# Share of the preparation's time each stage takes (for progress); registration dominates.
_CHECK_SHARE, _REGISTER_SHARE, _RESAMPLE_SHARE = 0.05, 0.75, 0.15


@dataclass
class PreparedExam:
    """An exam on the model grid, ready for the network, and what is needed to go back.

    `image` is (4, I, J, K) float32 in canonical sequence order, z-scored inside `mask` (the brain
    of the present sequences), absent channels zero. `model_grid` carries the grid's geometry,
    `reference` is the user's volume whose grid the labels must land on. `registrations` holds,
    for each registered sequence, the transform from reference to sequence points; `extraction`
    what was done about the skull (its mask lies on the grid of the sequence it came from).
    """

    image: np.ndarray
    subset: Subset
    model_grid: sitk.Image
    reference: sitk.Image
    reference_name: str
    steps: List[str]
    mask: Optional[np.ndarray] = None
    registrations: Dict[str, Registration] = field(default_factory=dict)
    extraction: Optional[BrainExtraction] = None

    @property
    def present(self) -> Tuple[bool, ...]:
        """One flag per canonical sequence, as the network takes them."""
        return self.subset.mask

    @property
    def resampled(self) -> bool:
        """False when the model grid is the reference's own grid (nothing was interpolated there)."""
        return not same_grid(self.model_grid, self.reference)


def prepare_exam(
    images: Mapping[str, Optional[sitk.Image]],
    spacing: Sequence[float],
    reference: Optional[str] = None,
    report: Report = lambda stage, fraction: None,
    normalisation: str = ZSCORE,
    extract: Optional[Extract] = None,
    bias_correction: str = NONE,
) -> PreparedExam:
    """Check, co-register, resample to the model grid and normalise any subset of sequences.

    `images` maps sequence names (aliases accepted; None = absent) to volumes (a SequenceMap is
    trusted as it is); `spacing` is the model's voxel spacing (mm); `reference` overrides the
    reference sequence. `report(stage, fraction)` is told the current stage and the fraction (0-1)
    of the whole preparation done. `normalisation` is the model's (intensity.NORMALISATIONS).
    `extract`, when given, decides on and runs brain extraction (after the checks, before the
    registration). `bias_correction` is the model's (bias_field.BIAS_CORRECTIONS), applied on the
    model grid before the normalisation.
    """
    inputs = sequence_map(images)
    spacing = check_spacing(spacing)
    report("checking the inputs", 0.0)
    for name, image in inputs.items():
        preflight(name, image)
    reference_name = choose_reference(inputs, reference)
    reference_image = inputs[reference_name]
    steps = [f"reference: {reference_name} ({describe_grid(reference_image)})"]
    extraction = None
    if extract is not None:
        report("extracting the brain", _CHECK_SHARE)
        extraction = extract(inputs)
        steps.append(extraction.describe())

    others = [s for s in inputs if s != reference_name]
    on_grid = [s for s in others if same_grid(inputs[s], reference_image)]
    to_register = [s for s in others if s not in on_grid]
    if on_grid:
        steps.append(f"{', '.join(on_grid)} share the {reference_name} grid: not registered")
    registrations: Dict[str, Registration] = {}
    for done, sequence in enumerate(to_register):
        report(f"registering {sequence} to {reference_name}", _progress(_REGISTER_SHARE, done, to_register))
        found = register_rigid(reference_image, inputs[sequence], sequence, reference_name)
        registrations[sequence] = found
        steps.append(found.describe(sequence, reference_name))

    report("resampling to the model grid", _CHECK_SHARE + _REGISTER_SHARE)
    grid = model_grid(reference_image, spacing)
    volumes = _on_model_grid(inputs, reference_image, grid, registrations)
    steps.append(_describe_resampling(grid, reference_image, reference_name, registrations))
    if extraction is not None and extraction.mask is not None:
        volumes[:, ~_extracted_brain(extraction, grid, registrations)] = 0.0
        steps.append(
            f"outside the brain {extraction.method} found on {extraction.sequence} set to 0 in "
            f"{', '.join(inputs.subset.sequences)} (the mask carried through the co-registration)"
        )

    subset = inputs.subset
    names = ", ".join(subset.sequences)
    if bias_correction != NONE:
        report("correcting the bias field", _CHECK_SHARE + _REGISTER_SHARE + _RESAMPLE_SHARE)
        volumes = correct_bias(volumes, grid.GetSpacing(), bias_correction)
        steps.append(f"bias field of {names} divided out ({bias_correction}, each on its own)")
    report("normalising intensities", _CHECK_SHARE + _REGISTER_SHARE + _RESAMPLE_SHARE)
    mask = brain_mask(volumes, subset.mask)
    image = normalise_sequences(volumes, subset.mask, normalisation)
    absent = subset.absent
    if normalisation == ZSCORE:
        described = f"z-scored {names}, each over the brain it covers (together {int(mask.sum())} voxels)"
    else:
        described = f"min-max scaled {names}, each to [0, 1] over its whole volume"
    steps.append(described + (f"; {', '.join(absent)} absent (zero)" if absent else ""))
    report("prepared", 1.0)
    return PreparedExam(
        image, subset, grid, reference_image, reference_name, steps, mask, registrations, extraction
    )


def labels_to_reference(labels: np.ndarray, exam: PreparedExam) -> sitk.Image:
    """An (I, J, K) label map on the model grid as a uint8 image on the reference's grid, voxel for voxel."""
    on_model = _label_image(labels, exam.model_grid)
    if not exam.resampled:
        on_model.CopyInformation(exam.reference)
        return on_model
    identity = sitk.Transform(3, sitk.sitkIdentity)
    return sitk.Resample(on_model, exam.reference, identity, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)


def brain_mask_on_reference(exam: PreparedExam) -> sitk.Image:
    """The brain the exam was segmented in, as a uint8 0/1 image on the reference's grid.

    With brain extraction, the tool's mask carried from its sequence; without, the voxels where a
    sequence had signal (the model grid's brain, brought back like the labels).
    """
    extraction = exam.extraction
    if extraction is None or extraction.mask is None:
        return labels_to_reference(exam.mask.astype(np.uint8), exam)
    inside = _extracted_brain(extraction, exam.reference, exam.registrations)
    return array_to_image(inside.astype(np.uint8), exam.reference)


def labels_to_model(labels: sitk.Image, exam: PreparedExam) -> np.ndarray:
    """A label image in the reference's space (e.g. a ground truth) as (I, J, K) uint8 on the model grid."""
    moved = resample(labels, exam.model_grid, None, sitk.sitkNearestNeighbor, sitk.sitkUInt8)
    return image_to_array(moved)


def _on_model_grid(
    inputs: SequenceMap[sitk.Image],
    reference: sitk.Image,
    grid: sitk.Image,
    registrations: Dict[str, Registration],
) -> np.ndarray:
    """The (4, I, J, K) raw volumes on the model grid (absent sequences zero)."""
    volumes = np.zeros((len(SEQUENCES), *grid.GetSize()), dtype=np.float32)
    exact = same_grid(grid, reference)
    for channel, sequence in enumerate(SEQUENCES):
        if sequence not in inputs:
            continue
        registration = registrations.get(sequence)
        if exact and registration is None:
            volumes[channel] = image_to_array(inputs[sequence])
        else:
            transform = registration.transform if registration is not None else None
            volumes[channel] = image_to_array(resample(inputs[sequence], grid, transform))
    return volumes


def _extracted_brain(
    extraction: BrainExtraction, grid: sitk.Image, registrations: Dict[str, Registration]
) -> np.ndarray:
    """The extracted brain on `grid` (reference space), (I, J, K) bool: the mask carried from its sequence."""
    registration = registrations.get(extraction.sequence)
    transform = registration.transform if registration is not None else None
    return image_to_array(resample(extraction.mask, grid, transform)) >= 0.5


def _describe_resampling(
    grid: sitk.Image, reference: sitk.Image, name: str, registrations: Dict[str, Registration]
) -> str:
    spacing = describe_spacing(grid.GetSpacing())
    if same_grid(grid, reference):
        moved = f"; {', '.join(registrations)} resampled onto it" if registrations else ": no resampling"
        return f"{name} is on the model grid already (identity direction, {spacing} mm){moved}"
    return (
        f"resampled to the model grid covering {name}: identity direction, {spacing} mm, size "
        f"{grid.GetSize()}; linear interpolation, 0 outside each field of view"
    )


def _label_image(labels: np.ndarray, grid: sitk.Image) -> sitk.Image:
    array = np.asarray(labels)
    if array.shape != tuple(grid.GetSize()):
        raise ValueError(f"labels of shape {array.shape} are not on the model grid of size {grid.GetSize()}")
    if array.size and (array.min() < 0 or array.max() > np.iinfo(np.uint8).max):
        raise ValueError(f"label values must lie in 0-255; got {array.min()}-{array.max()}")
    return array_to_image(array.astype(np.uint8), grid)


def _progress(share: float, done: int, items: Sequence[str]) -> float:
    return _CHECK_SHARE + share * done / max(len(items), 1)
