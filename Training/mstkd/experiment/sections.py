"""The `data:`, `train:` and `output:` sections of an experiment config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

from mstkd.bias_field import BIAS_CORRECTIONS, NONE
from mstkd.conventions import DEFAULT_LABELS, LABEL_RULES, label_convention
from mstkd.errors import MSTKDError
from mstkd.intensity import NORMALISATIONS, ZSCORE


@dataclass(frozen=True)
class Augmentation:
    """Random augmentation (MST-KDNet's reference: flips on 3 axes only; MAG-MS's: see magms.yaml).

    Flips: each axis with `flip_probability` on its own, or (`flip_axes_together`, as MONAI's
    RandFlipd over three axes in the MAG-MS reference) one draw flipping all three. Intensity:
    a random scale 1 + U(-s, s) and a random shift U(-o, o), each with `intensity_probability`,
    per sequence or (`intensity_channel_wise: false`) one draw for all. Rot90 by k in 1..3 in
    the first two axes with `rotate90_probability` (needs a patch with equal first two sides).

    The acquisition augmentations (gamma to elastic; neither reference has them, all off by
    default) act on each raw sequence with its own draw, strengths relative to its brain mean;
    see `training.augment`. A probability of 0 switches an augmentation off.
    """

    flip_probability: float = 0.5
    flip_axes_together: bool = False
    intensity_scale: float = 0.1  # z-scored channels, inside the brain
    intensity_shift: float = 0.1
    intensity_probability: float = 0.5
    intensity_channel_wise: bool = True
    # Scale and shift only the brain's voxels (0 stays 0; the domain-randomised demo recipe), not
    # the whole patch as MONAI's transforms in both references do.
    intensity_inside_brain: bool = False
    rotate90_probability: float = 0.0
    gamma_probability: float = 0.0
    gamma_range: Tuple[float, float] = (0.7, 1.5)
    # A random monotone curve through this many control points (MONAI's RandHistogramShift): a
    # contrast no gamma reaches, between the image's minimum (0, outside the brain) and maximum.
    intensity_curve_probability: float = 0.0
    intensity_curve_points: Tuple[int, int] = (5, 10)
    bias_probability: float = 0.0
    bias_strength: float = 0.2  # Legendre coefficients (degree 3) of the log field, uniform in +-this
    slice_gain_probability: float = 0.0
    slice_gain_strength: float = 0.15  # each slice, odd/even slices or slabs times 1 + U(-this, this)
    ghosting_probability: float = 0.0
    ghosting_strength: Tuple[float, float] = (0.1, 0.5)  # every 2nd-4th k-space line times 1 - U(range)
    blur_probability: float = 0.0
    blur_sigma: Tuple[float, float] = (0.3, 1.2)  # voxels, per axis
    noise_probability: float = 0.0
    noise_std: float = 0.08  # Gaussian, standard deviation up to this fraction of the brain mean
    thick_slice_probability: float = 0.0
    thick_slice_factor: Tuple[float, float] = (1.5, 4.0)  # slice thickness in voxels, along a random axis
    low_resolution_probability: float = 0.0
    low_resolution_zoom: Tuple[float, float] = (0.5, 1.0)
    affine_probability: float = 0.0
    rotate_degrees: float = 10.0
    scale_range: float = 0.1
    elastic_probability: float = 0.0
    elastic_sigma: Tuple[float, float] = (5.0, 8.0)  # voxels
    elastic_magnitude: Tuple[float, float] = (0.0, 3.0)  # voxels

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if name.endswith("_probability") and not 0.0 <= value <= 1.0:
                raise MSTKDError(f"data.augmentation.{name} must lie in [0, 1], not {value}.")


TUMOUR_CROP, UNIFORM_CROP = "tumour", "uniform"
CROPS = (TUMOUR_CROP, UNIFORM_CROP)


@dataclass(frozen=True)
class DataConfig:
    """Where the cases are and how they are split, cached, normalised, cropped and augmented.

    Crops: `tumour` centres a patch on a tumour voxel with probability `foreground_ratio` and
    on a background voxel otherwise (MAG-MS's reference: always tumour, ratio 1); `uniform`
    draws the patch position uniformly, as the MST-KDNet reference does. `crop_to_brain`
    first cuts each case to the brain's bounding box (the MST-KDNet reference draws its crops
    from the whole grid; MAG-MS's crops the foreground first).
    """

    root: Optional[str] = None  # any supported layout, or a phantom folder
    labels: str = DEFAULT_LABELS
    train_split: Optional[str] = None  # split files: one case id per line
    val_split: Optional[str] = None
    test_split: Optional[str] = None
    split_seed: int = 42  # used when no split files are given
    split_fractions: Tuple[float, float, float] = (0.7, 0.1, 0.2)  # train, val, test
    normalisation: str = ZSCORE  # zscore (over each sequence's brain) | minmax (the MST-KDNet reference)
    # none | n4: each sequence's bias field divided out before normalisation, in training (each
    # case as loaded), validation, evaluation and inference alike (mstkd.bias_field).
    bias_correction: str = NONE
    crop: str = TUMOUR_CROP
    foreground_ratio: float = 0.5  # share of tumour-centred patches (crop: tumour)
    crop_to_brain: bool = True
    # Share of samples whose images are drawn from the case's class map (domain randomisation,
    # `training.synthesis`; phantoms written with --class-maps); the rest use the case's images.
    synthesis: float = 0.0
    # Share of those synthesised samples whose tumour is replaced by one of random geometry
    # (`training.tumour_shapes`: foci, rims, cores and oedema drawn from wide rules).
    synthetic_tumours: float = 0.0
    cache_rate: float = 1.0
    workers: int = 2
    augmentation: Augmentation = field(default_factory=Augmentation)

    def __post_init__(self) -> None:
        label_convention(self.labels)
        for name in ("foreground_ratio", "synthesis", "synthetic_tumours"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise MSTKDError(f"data.{name} must lie in [0, 1], not {getattr(self, name)}.")
        if self.synthetic_tumours > 0 and self.synthesis == 0:
            raise MSTKDError(
                "data.synthetic_tumours redraws the tumour of synthesised samples only; "
                "set data.synthesis above 0 too."
            )
        if self.crop not in CROPS:
            raise MSTKDError(f"data.crop must be one of {', '.join(CROPS)}, not {self.crop!r}.")
        if self.normalisation not in NORMALISATIONS:
            raise MSTKDError(
                f"data.normalisation must be one of {', '.join(NORMALISATIONS)}, not {self.normalisation!r}."
            )
        if self.bias_correction not in BIAS_CORRECTIONS:
            raise MSTKDError(
                f"data.bias_correction must be one of {', '.join(BIAS_CORRECTIONS)}, "
                f"not {self.bias_correction!r}."
            )


STEP_SCHEDULE, EPOCH_SCHEDULE = "step", "epoch"
LR_SCHEDULES = (STEP_SCHEDULE, EPOCH_SCHEDULE)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, precision, schedule of validation/checkpoints, and the device.

    The run's length is `steps` optimiser steps or `epochs` passes over the training cases
    (set one, the other null). The poly learning rate decays after every step or, as both
    references do, once per epoch (`lr_schedule`).
    """

    steps: Optional[int] = 1000
    epochs: Optional[int] = None
    batch_size: int = 1
    learning_rate: float = 1e-4
    weight_decay: float = 1e-5
    amsgrad: bool = False
    poly_power: float = 0.9
    lr_schedule: str = STEP_SCHEDULE
    # Rescale the gradients' global norm to at most this (null: no clipping, as both references).
    gradient_clip: Optional[float] = 12.0
    # Clamp every gradient element to [-v, v] and replace NaN by 0 (MAG-MS's reference, v = 1).
    gradient_clamp: Optional[float] = None
    discriminator_learning_rate: float = 1e-4
    discriminator_betas: Tuple[float, float] = (0.9, 0.99)
    bf16: bool = False  # autocast to bfloat16 where the device supports it
    seed: int = 42
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    val_subsets: str = "all15"  # subsets validated: 'all15' (the protocol) or e.g. 'all;flair,t2'
    log_every: int = 10
    # Every this many steps, log each loss term's gradient norm on the student (0: never).
    gradient_norm_every: int = 100
    val_every: int = 200
    checkpoint_every: int = 200
    init_from: Optional[str] = None  # a model file whose weights start the inference network (fine-tuning)

    def __post_init__(self) -> None:
        if (self.steps is None) == (self.epochs is None):
            raise MSTKDError(
                "Give the run's length as train.steps or as train.epochs, and set the other to null "
                f"(got steps={self.steps}, epochs={self.epochs}), e.g. --set train.epochs=100 "
                "--set train.steps=null."
            )
        for name in ("steps", "epochs", "batch_size", "log_every", "val_every", "checkpoint_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise MSTKDError(f"train.{name} must be at least 1, not {value}.")
        if self.lr_schedule not in LR_SCHEDULES:
            raise MSTKDError(
                f"train.lr_schedule must be one of {', '.join(LR_SCHEDULES)}, not {self.lr_schedule!r}."
            )
        if self.gradient_norm_every < 0:
            raise MSTKDError(
                f"train.gradient_norm_every must be 0 (never) or more, not {self.gradient_norm_every}."
            )
        for name in ("gradient_clip", "gradient_clamp"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise MSTKDError(f"train.{name} must be positive or null, not {value}.")
        if self.learning_rate <= 0:
            raise MSTKDError(f"train.learning_rate must be positive, not {self.learning_rate}.")


# Small ET is counted over the whole case (the MAG-MS reference) or per connected component.
PER_CASE, PER_COMPONENT = "case", "component"
ET_SCOPES = (PER_CASE, PER_COMPONENT)
# How overlapping sliding windows are averaged (MONAI's modes): Gaussian weights favouring each
# window's centre, or uniform weights (MONAI's default, which MAG-MS's reference uses).
GAUSSIAN_BLENDING, CONSTANT_BLENDING = "gaussian", "constant"
BLENDINGS = (GAUSSIAN_BLENDING, CONSTANT_BLENDING)


@dataclass(frozen=True)
class OutputConfig:
    """The `output:` section: how a model's probabilities become the label map it reports.

    Recorded in every model file, so that validation, `mstkd evaluate-model` and the Predictor
    apply the rule the model was trained and selected with.
    """

    label_rule: Optional[str] = None  # None: the method's own (see experiment.DEFAULT_LABEL_RULES)
    threshold: float = 0.5
    et_min_voxels: int = 0  # 0: keep every ET voxel; MAG-MS's reference: 500
    et_min_voxels_per: str = PER_CASE
    blending: str = GAUSSIAN_BLENDING
    # Test-time mirroring (nnU-Net's): each window's scores averaged with those of the window mirrored
    # along every combination of these spatial axes (0, 1, 2: x, y, z), so 2 ** len(mirror_axes) passes.
    mirror_axes: Tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.label_rule is not None and self.label_rule not in LABEL_RULES:
            raise MSTKDError(
                f"output.label_rule must be one of {', '.join(LABEL_RULES)}, not {self.label_rule!r}."
            )
        if not 0.0 < self.threshold < 1.0:
            raise MSTKDError(f"output.threshold must lie strictly between 0 and 1, not {self.threshold}.")
        if self.et_min_voxels < 0:
            raise MSTKDError(f"output.et_min_voxels must be 0 (off) or more, not {self.et_min_voxels}.")
        if self.blending not in BLENDINGS:
            raise MSTKDError(f"output.blending must be one of {', '.join(BLENDINGS)}, not {self.blending!r}.")
        if self.et_min_voxels_per not in ET_SCOPES:
            raise MSTKDError(
                f"output.et_min_voxels_per must be one of {', '.join(ET_SCOPES)}, "
                f"not {self.et_min_voxels_per!r}."
            )
        if len(set(self.mirror_axes)) != len(self.mirror_axes) or not set(self.mirror_axes) <= {0, 1, 2}:
            raise MSTKDError(
                f"output.mirror_axes lists distinct spatial axes among 0, 1 and 2 (x, y, z), "
                f"not {list(self.mirror_axes)}."
            )

    @property
    def rule(self) -> str:
        """The label rule (a resolved config always names one)."""
        if self.label_rule is None:
            raise ValueError("this output config's label rule has not been resolved for a method")
        return self.label_rule
