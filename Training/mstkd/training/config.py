"""The `data:` and `train:` sections of an experiment config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

from mstkd.conventions import DEFAULT_LABELS, label_convention
from mstkd.errors import MSTKDError


@dataclass(frozen=True)
class Augmentation:
    """Random augmentation strengths (MST-KDNet: flips; MAG-MS adds intensity scale/shift 0.1).

    A probability of 0 switches an augmentation off. The acquisition augmentations (gamma to
    low resolution) act on each raw sequence with its own draw, strengths relative to its brain
    mean; see `training.augment`.
    """

    flip_probability: float = 0.5
    intensity_scale: float = 0.1  # z-scored channels, inside the brain
    intensity_shift: float = 0.1
    intensity_probability: float = 0.5
    gamma_probability: float = 0.0
    gamma_range: Tuple[float, float] = (0.7, 1.5)
    bias_probability: float = 0.0
    bias_strength: float = 0.2  # Legendre coefficients (degree 3) of the log field, uniform in +-this
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


@dataclass(frozen=True)
class DataConfig:
    """Where the cases are and how they are split, cached and augmented."""

    root: Optional[str] = None  # any supported layout, or a phantom folder
    labels: str = DEFAULT_LABELS
    train_split: Optional[str] = None  # split files: one case id per line
    val_split: Optional[str] = None
    test_split: Optional[str] = None
    split_seed: int = 42  # used when no split files are given
    split_fractions: Tuple[float, float, float] = (0.7, 0.1, 0.2)  # train, val, test
    foreground_ratio: float = 0.5  # share of patches centred on tumour
    # Share of samples whose images are drawn from the case's class map (domain randomisation,
    # `training.synthesis`; phantoms written with --class-maps); the rest use the case's images.
    synthesis: float = 0.0
    cache_rate: float = 1.0
    workers: int = 2
    augmentation: Augmentation = field(default_factory=Augmentation)

    def __post_init__(self) -> None:
        label_convention(self.labels)
        for name in ("foreground_ratio", "synthesis"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise MSTKDError(f"data.{name} must lie in [0, 1], not {getattr(self, name)}.")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, precision, schedule of validation/checkpoints, and the device."""

    steps: int = 1000
    batch_size: int = 1
    learning_rate: float = 1e-4
    weight_decay: float = 1e-5
    amsgrad: bool = False
    poly_power: float = 0.9
    gradient_clip: Optional[float] = 12.0
    discriminator_learning_rate: float = 1e-4
    discriminator_betas: Tuple[float, float] = (0.9, 0.99)
    bf16: bool = False  # autocast to bfloat16 where the device supports it
    seed: int = 42
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    val_subsets: str = "all15"  # subsets validated: 'all15' (the protocol) or e.g. 'all;flair,t2'
    log_every: int = 10
    val_every: int = 200
    checkpoint_every: int = 200
    init_from: Optional[str] = None  # a model file whose weights start the inference network (fine-tuning)

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every", "val_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise MSTKDError(f"train.{name} must be at least 1, not {getattr(self, name)}.")
        if self.learning_rate <= 0:
            raise MSTKDError(f"train.learning_rate must be positive, not {self.learning_rate}.")
