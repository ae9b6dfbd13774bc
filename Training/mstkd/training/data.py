"""Training data: cases on disk -> normalised teacher/student patches with a random subset.

Loading and the foreground crop are deterministic and cached; the rest is random: images drawn
from the class map (data.synthesis), acquisition augmentations of the raw sequences, the subset
draw with the normalisation inference uses (each present sequence z-scored over its brain,
absent ones 0), the patch crop, and the spatial and intensity augmentations.
"""

from __future__ import annotations

from typing import Any, Dict, Hashable, List, Mapping, Sequence, Tuple

import numpy as np
import torch
from monai.data import CacheDataset
from monai.transforms import (
    Compose,
    CropForegroundd,
    MapTransform,
    RandCropByPosNegLabeld,
    RandFlipd,
    Randomizable,
    RandRotate90d,
    RandScaleIntensityd,
    RandShiftIntensityd,
    RandSpatialCropSamplesd,
    SpatialPadd,
)

from mstkd.bias_field import NONE, correct_bias
from mstkd.cases import Case, class_map_path
from mstkd.conventions import SEQUENCES, SUBSETS, LabelConvention, Subset, check_labels, label_convention
from mstkd.errors import MSTKDError
from mstkd.experiment.sections import UNIFORM_CROP, Augmentation, DataConfig
from mstkd.imageio import image_to_array, read_image
from mstkd.intensity import ZSCORE, normalise_sequences
from mstkd.training.augment import (
    AugmentSequencesd,
    RandScaleShiftBraind,
    acquisition_transforms,
    deformation_transforms,
)
from mstkd.training.synthesis import SynthesiseSequencesd

# Keys of one training sample.
RAW, TEACHER, STUDENT, LABEL, PRESENT = "raw", "teacher_image", "student_image", "label", "present"
CASE_ID, CLASSES = "case_id", "classes"


def case_record(case: Case, with_classes: bool = False) -> Dict[str, Any]:
    """The dict a dataset holds for one case: its id and file paths (and its class map's)."""
    missing = case.missing
    if missing or case.segmentation is None:
        what = list(missing) + ([] if case.segmentation is not None else ["segmentation"])
        raise MSTKDError(f"Case {case.case_id} cannot be used for training: it lacks {', '.join(what)}.")
    record = {
        CASE_ID: case.case_id,
        "paths": [str(case.sequences[s]) for s in SEQUENCES],
        "seg": str(case.segmentation),
    }
    if with_classes:
        path = class_map_path(case)
        if not path.is_file():
            raise MSTKDError(
                f"data.synthesis needs each case's class map, and case {case.case_id} has none at {path}; "
                "write phantoms with `mstkd phantom --class-maps`, or set data.synthesis=0."
            )
        record[CLASSES] = str(path)
    return record


class LoadCased(MapTransform):
    """Read the four sequences (canonical order), the label map and any class map as (i, j, k) arrays;
    the sequences bias-corrected by `bias_correction` (mstkd.bias_field)."""

    def __init__(self, labels: LabelConvention, bias_correction: str = NONE) -> None:
        super().__init__(keys=["paths"])
        self.labels = labels
        self.bias_correction = bias_correction

    def __call__(self, record: Mapping[Hashable, Any]) -> Dict[Hashable, Any]:
        images = [read_image(path) for path in record["paths"]]
        reference = images[0]
        for sequence, image in zip(SEQUENCES, images):
            if image.GetSize() != reference.GetSize():
                raise MSTKDError(
                    f"Case {record[CASE_ID]}: {sequence} has size {image.GetSize()} but flair has "
                    f"{reference.GetSize()}; training needs co-registered sequences on one grid."
                )
        label = image_to_array(read_image(record["seg"])).astype(np.uint8)
        check_labels(label, self.labels, f"segmentation of case {record[CASE_ID]}")
        raw = np.stack([image_to_array(image).astype(np.float32) for image in images])
        raw = correct_bias(raw, reference.GetSpacing(), self.bias_correction)
        loaded = {CASE_ID: record[CASE_ID], RAW: raw, LABEL: label[None]}
        if CLASSES in record:
            classes = image_to_array(read_image(record[CLASSES])).astype(np.uint8)
            if classes.shape != label.shape:
                raise MSTKDError(
                    f"Case {record[CASE_ID]}: its class map has shape {classes.shape} but its segmentation "
                    f"{label.shape}; write the phantoms again with --class-maps."
                )
            loaded[CLASSES] = classes[None]
        return loaded


class SampleSubsetd(Randomizable, MapTransform):
    """Draw one of the 15 subsets uniformly and build the student (and teacher) inputs.

    The teacher sees all four sequences; the student sees the drawn subset, normalised with
    a brain mask from the present sequences only, the absent ones zero-filled.
    """

    def __init__(
        self, with_teacher: bool, subsets: Sequence[Subset] = SUBSETS, normalisation: str = ZSCORE
    ) -> None:
        super().__init__(keys=[RAW])
        self.with_teacher = with_teacher
        self.subsets = tuple(subsets)
        self.normalisation = normalisation
        self.choice = 0

    def randomize(self, data: Any = None) -> None:
        self.choice = int(self.R.randint(len(self.subsets)))

    def __call__(self, sample: Mapping[Hashable, Any]) -> Dict[Hashable, Any]:
        self.randomize()
        present = self.subsets[self.choice].mask
        out = {k: v for k, v in sample.items() if k != RAW}
        out[STUDENT] = normalise_sequences(sample[RAW], present, self.normalisation)
        if self.with_teacher:
            out[TEACHER] = normalise_sequences(sample[RAW], (True,) * len(SEQUENCES), self.normalisation)
        out[PRESENT] = torch.tensor(present)
        return out


class ZeroAbsentd(MapTransform):
    """Zero the absent sequences again after an intensity shift made them non-zero."""

    def __call__(self, sample: Mapping[Hashable, Any]) -> Dict[Hashable, Any]:
        out = dict(sample)
        present = torch.as_tensor(sample[PRESENT]).view(-1, *([1] * 3)).to(torch.float32)
        for key in self.key_iterator(out):
            out[key] = out[key] * present
        return out


def training_transform(
    patch: Tuple[int, int, int], with_teacher: bool, subsets: Sequence[Subset], data: DataConfig
) -> Compose:
    """The random part: synthesis, acquisition, subset and normalisation, crop, augmentation."""
    images = [STUDENT, TEACHER] if with_teacher else [STUDENT]
    keys = [*images, LABEL]
    a = data.augmentation
    labels = label_convention(data.labels)
    acquisition = acquisition_transforms(a)
    return Compose(
        [
            *(
                [SynthesiseSequencesd(RAW, CLASSES, data.synthesis, LABEL, labels, data.synthetic_tumours)]
                if data.synthesis > 0
                else []
            ),
            *([AugmentSequencesd(RAW, acquisition)] if acquisition else []),
            SampleSubsetd(with_teacher, subsets, data.normalisation),
            SpatialPadd(keys, spatial_size=patch),
            _patch_crop(keys, patch, data),
            *_flips(keys, a),
            *deformation_transforms(images, LABEL, a),
            *_intensity(images, a),
            RandRotate90d(keys, prob=a.rotate90_probability, max_k=3, spatial_axes=(0, 1)),
            ZeroAbsentd([STUDENT]),
        ]
    )


def _patch_crop(keys: List[str], patch: Tuple[int, int, int], data: DataConfig) -> MapTransform:
    """A tumour-or-background-centred crop (data.foreground_ratio), or a uniformly placed one."""
    if data.crop == UNIFORM_CROP:
        return RandSpatialCropSamplesd(keys, roi_size=patch, num_samples=1, random_size=False)
    return RandCropByPosNegLabeld(
        keys,
        label_key=LABEL,
        spatial_size=patch,
        pos=data.foreground_ratio,
        neg=1.0 - data.foreground_ratio,
        num_samples=1,
        image_key=STUDENT,
        image_threshold=-np.inf,
    )


def _flips(keys: List[str], augmentation: Augmentation) -> List[MapTransform]:
    """Each axis flipped on its own draw, or all three on one draw."""
    if augmentation.flip_axes_together:
        return [RandFlipd(keys, prob=augmentation.flip_probability, spatial_axis=[0, 1, 2])]
    return [RandFlipd(keys, prob=augmentation.flip_probability, spatial_axis=axis) for axis in range(3)]


def _intensity(images: List[str], a: Augmentation) -> List[MapTransform]:
    """Random scale and shift: MONAI's over the patch, or (`intensity_inside_brain`) the brain's only."""
    if a.intensity_inside_brain:
        return [RandScaleShiftBraind(images, a.intensity_scale, a.intensity_shift, a.intensity_probability)]
    return [
        RandScaleIntensityd(
            images,
            factors=a.intensity_scale,
            prob=a.intensity_probability,
            channel_wise=a.intensity_channel_wise,
        ),
        RandShiftIntensityd(
            images,
            offsets=a.intensity_shift,
            prob=a.intensity_probability,
            channel_wise=a.intensity_channel_wise,
        ),
    ]


def cached_transform(
    labels: LabelConvention,
    crop_to_brain: bool = True,
    with_classes: bool = False,
    bias_correction: str = NONE,
) -> Compose:
    """The deterministic part: read the files (and class maps), correct the bias field when asked
    and, by default, crop to the brain's box."""
    steps: List[MapTransform] = [LoadCased(labels, bias_correction)]
    if crop_to_brain:
        keys = [RAW, LABEL, CLASSES] if with_classes else [RAW, LABEL]
        steps.append(CropForegroundd(keys, source_key=RAW, margin=2))
    return Compose(steps)


class TrainingDataset(torch.utils.data.Dataset):
    """Cached cases; item (epoch, index) is one random training sample of case `index`."""

    def __init__(
        self,
        cases: Sequence[Case],
        data: DataConfig,
        patch: Tuple[int, int, int],
        with_teacher: bool,
        subsets: Sequence[Subset] = SUBSETS,
        seed: int = 0,
    ) -> None:
        with_classes = data.synthesis > 0
        records = [case_record(case, with_classes) for case in cases]
        self.cache = CacheDataset(
            records,
            cached_transform(
                label_convention(data.labels), data.crop_to_brain, with_classes, data.bias_correction
            ),
            cache_rate=data.cache_rate,
            num_workers=data.workers or None,
            progress=False,
        )
        self.transform = training_transform(patch, with_teacher, subsets, data)
        self.seed = seed

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, item: Tuple[int, int]) -> Dict[Hashable, Any]:
        """The sample of case `index` in `epoch`: its randomness depends on (seed, epoch, index) only."""
        epoch, index = item
        state = np.random.SeedSequence([self.seed, epoch, index]).generate_state(1)[0]
        self.transform.set_random_state(seed=int(state))
        (sample,) = self.transform(self.cache[index])
        return sample


def collate(samples: List[Mapping[Hashable, Any]]) -> Dict[str, Any]:
    """Stack samples into a batch of plain tensors (MetaTensor metadata is not needed here)."""
    batch: Dict[str, Any] = {CASE_ID: [s[CASE_ID] for s in samples]}
    for key in (STUDENT, TEACHER, LABEL, PRESENT):
        if key in samples[0]:
            batch[key] = torch.stack([torch.as_tensor(s[key]).as_subclass(torch.Tensor) for s in samples])
    return batch
